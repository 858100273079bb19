import { type Case, check, checkEqual, checkError, checkStatus, fail } from "../case.ts";
import type { Answer } from "../client.ts";
import { signBody } from "../client.ts";
import { inboundSmsPayload } from "./fixtures.ts";

const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/** The headers SPEC §8 puts on every response (the CSP is checked on API responses only; the docs have their own). */
function securityHeaderProblems(a: Answer, api: boolean): string[] {
  const h = a.headers;
  const problems: string[] = [];
  const expect = (name: string, value: string) => {
    if ((h.get(name) ?? "").toLowerCase() !== value.toLowerCase()) problems.push(`${name} is ${JSON.stringify(h.get(name))}, not "${value}"`);
  };
  expect("x-content-type-options", "nosniff");
  expect("x-frame-options", "DENY");
  expect("referrer-policy", "no-referrer");
  if (api) {
    expect("content-security-policy", API_CSP);
    expect("cache-control", "no-store");
  }
  if (h.has("x-powered-by")) problems.push(`X-Powered-By is sent: ${h.get("x-powered-by")}`);
  const server = h.get("server");
  if (server && /\d+\.\d+/.test(server)) problems.push(`the Server header names a version: ${server}`);
  if (!h.get("x-request-id")) problems.push("X-Request-Id is missing");
  return problems;
}

/** SPEC §2, §8: headers, request ids, API keys, rate-limit headers and signed webhooks. */
export const securityCases: Case[] = [
  {
    id: "security.headers-success",
    title: "a successful API response carries every security header and Cache-Control: no-store",
    tags: ["security", "headers"],
    spec: "§8 Headers on every response: nosniff, DENY, no-referrer, CSP, Cache-Control: no-store, no X-Powered-By or version banner",
    async run({ http }) {
      const a = await http.get("/api/conversations?pageSize=1");
      checkStatus(a, 200, "GET /api/conversations");
      const problems = securityHeaderProblems(a, true);
      check(problems.length === 0, problems.join("; "));
    },
  },
  {
    id: "security.headers-errors",
    title: "error answers (404, 405, 400) and the health probe carry the security headers too",
    tags: ["security", "headers"],
    spec: "§8 Headers on every response; §2 every response carries X-Request-Id",
    async run({ http, data }) {
      const answers: [string, Answer, boolean][] = [
        ["404", await http.get(`/api/selftest-${data.runId}-nowhere`), true],
        ["405", await http.request("/api/conversations", { method: "PUT", json: {} }), true],
        ["400", await http.request("/api/messages/sms", { method: "POST", raw: "{" }), true],
        ["/healthz", await http.get("/healthz"), false],
      ];
      const problems = answers.flatMap(([what, a, api]) => securityHeaderProblems(a, api).map((p) => `${what}: ${p}`));
      check(problems.length === 0, problems.join("; "));
    },
  },
  {
    id: "security.request-id",
    title: "a sane X-Request-Id is echoed, and one is made up when none is sent",
    tags: ["security", "headers"],
    spec: "§2 Every response carries X-Request-Id (echoing a sane inbound one, else generated)",
    async run({ http, data }) {
      const mine = `selftest-${data.runId}-request`;
      const echoed = await http.get("/healthz", { headers: { "x-request-id": mine } });
      checkEqual(echoed.headers.get("x-request-id"), mine, "X-Request-Id of a request that sent one");
      const made = await http.get("/healthz");
      const id = made.headers.get("x-request-id");
      check(id !== null && id.length >= 8, `no X-Request-Id made up for a request without one: ${id}`);
      const again = await http.get("/healthz");
      check(again.headers.get("x-request-id") !== id, "two requests got the same made-up X-Request-Id");
    },
  },
  {
    id: "security.hsts",
    title: "over https the answers carry Strict-Transport-Security",
    tags: ["security", "headers"],
    spec: "§8 Strict-Transport-Security when configured (on by default when the public URL is https)",
    needs: ["https"],
    async run({ http }) {
      const a = await http.get("/healthz");
      check(/max-age=\d+/.test(a.headers.get("strict-transport-security") ?? ""), "no Strict-Transport-Security with a max-age over https");
    },
  },
  {
    id: "security.auth-missing-key",
    title: "an /api request without a key is 401 unauthorized with WWW-Authenticate: Bearer",
    tags: ["security", "auth"],
    spec: "§8 routes under /api/ except webhooks require Authorization: Bearer <key>; missing key → 401",
    needs: ["auth"],
    async run({ target }) {
      // The probe's request without a key, so a run costs the target's failed-login counter as little as it can.
      const a = target.anonymousAnswer;
      checkError(a, 401, "unauthorized", "GET /api/conversations without a key");
      check(/^bearer/i.test(a.headers.get("www-authenticate") ?? ""), "the 401 has no WWW-Authenticate: Bearer");
    },
  },
  {
    id: "security.auth-wrong-key",
    title: "an unknown API key is 401, and the answer does not say which part was wrong",
    tags: ["security", "auth"],
    spec: "§8 missing or wrong key → 401",
    needs: ["auth"],
    async run({ http, data }) {
      const a = await http.get("/api/conversations?pageSize=1", { headers: { authorization: `Bearer msg_st${data.runId}_notakeynotakeynotakeynotakeynotakey` } });
      checkError(a, 401, "unauthorized", "GET /api/conversations with an unknown key");
      check(!/prefix|secret|hash|revoked|expired/i.test(String(a.body.message)), `the 401 says why the key failed: ${String(a.body.message)}`);
    },
  },
  {
    id: "security.auth-webhooks-closed",
    title: "a webhook with neither API key nor signature is 401",
    tags: ["security", "auth", "webhooks"],
    spec: "§8 routes under /api/ require Authorization: Bearer <key>; the generic webhooks take a key with the inbound scope or a valid signature",
    needs: ["auth"],
    async run(ctx) {
      const a = await ctx.http.post("/api/webhooks/sms", inboundSmsPayload(ctx), { anonymous: true, unsigned: true });
      checkError(a, 401, "unauthorized", "POST /api/webhooks/sms without key or signature");
    },
  },
  {
    id: "security.ratelimit-headers",
    title: "API answers carry RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset",
    tags: ["security", "ratelimit"],
    spec: "§8 rate limits per client IP, token bucket; RateLimit-Limit / RateLimit-Remaining / RateLimit-Reset",
    async run({ http }) {
      const a = await http.get("/api/conversations?pageSize=1");
      checkStatus(a, 200, "GET /api/conversations");
      const [limit, remaining, reset] = ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"].map((name) => {
        const value = a.headers.get(name);
        if (value === null || !/^\d+$/.test(value)) fail(`${name} is ${JSON.stringify(value)}, not a whole number`);
        return Number(value);
      }) as [number, number, number];
      check(limit > 0 && remaining <= limit, `RateLimit-Remaining ${remaining} is not within RateLimit-Limit ${limit}`);
      check(reset <= 60 * 60, `RateLimit-Reset ${reset} is not in seconds`);
    },
  },
  {
    id: "security.webhook-signature-refused",
    title: "an unsigned or wrongly signed webhook is 401, and nothing is stored",
    tags: ["security", "webhooks", "signature"],
    spec: "§4 when a webhook signing secret is configured the request must carry a valid signature, otherwise 401; §8 X-Messaging-Signature",
    needs: ["signing"],
    async run(ctx) {
      const payload = inboundSmsPayload(ctx);
      // Without the key too: one with the inbound scope would stand in for the signature.
      const unsigned = await ctx.http.post("/api/webhooks/sms", payload, { unsigned: true, anonymous: true });
      checkError(unsigned, 401, "unauthorized", "an unsigned webhook");
      const forged = await ctx.http.post("/api/webhooks/sms", payload, {
        unsigned: true,
        anonymous: true,
        headers: { "x-messaging-signature": signBody(`not-the-secret-${ctx.data.runId}`, JSON.stringify(payload)) },
      });
      checkError(forged, 401, "unauthorized", "a webhook signed with another secret");
      const stale = await ctx.http.post("/api/webhooks/sms", payload, {
        unsigned: true,
        anonymous: true,
        headers: { "x-messaging-signature": signBody(`not-the-secret-${ctx.data.runId}`, JSON.stringify(payload), Math.floor(Date.now() / 1000) - 3600) },
      });
      checkError(stale, 401, "unauthorized", "a webhook signed an hour ago");
    },
  },
  {
    id: "security.webhook-signature-accepted",
    title: "a webhook signed with the secret over its raw body is accepted",
    tags: ["security", "webhooks", "signature"],
    spec: "§8 HMAC-SHA256 over timestamp.rawBody in X-Messaging-Signature: t=<unix>,v1=<hex>",
    needs: ["signing", "webhooks"],
    async run(ctx) {
      // Spaces and key order of our own choosing: the signature covers these exact bytes, not a re-serialisation.
      const raw = `{ "from": "${ctx.data.phone()}", "to": "${ctx.data.phone()}", "type": "sms", "messaging_provider_id": "${ctx.data.providerId()}", "body": "${ctx.data.body("signed")}", "attachments": null, "timestamp": "${ctx.data.timestamp()}" }`;
      const a = await ctx.http.request("/api/webhooks/sms", { method: "POST", raw });
      checkStatus(a, 202, "a signed webhook");
    },
  },
];
