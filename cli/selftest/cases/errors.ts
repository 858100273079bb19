import { type Case, check, checkError, checkStatus } from "../case.ts";
import { smsPayload } from "./fixtures.ts";

/** A body comfortably past the default 256 KiB limit (SPEC §2); a target with a raised limit is told apart below. */
const OVERSIZED_BYTES = 300 * 1024;
/** Sends one sender makes at most while looking for its limit (SPEC §3 default: 60 a minute). */
const SENDER_PROBE_MAX = 400;
/** Sends in flight at once while looking for it. */
const SENDER_PROBE_ROUND = 8;

/** SPEC §2: every error class answers the one envelope, framework errors included. */
export const errorCases: Case[] = [
  {
    id: "errors.not-found",
    title: "an unknown route is 404 not_found in the error envelope, under /api and outside it",
    tags: ["errors", "http"],
    spec: "§2 unknown route 404; errors always have {code, message, request_id}",
    async run({ http, data }) {
      checkError(await http.get(`/api/selftest-${data.runId}`), 404, "not_found", `GET /api/selftest-${data.runId}`);
      checkError(await http.get(`/selftest-${data.runId}`), 404, "not_found", `GET /selftest-${data.runId}`);
    },
  },
  {
    id: "errors.method-not-allowed",
    title: "a known route with the wrong method is 405 method_not_allowed with an Allow header",
    tags: ["errors", "http"],
    spec: "§2 known route, wrong method → 405 with an Allow header",
    async run({ http }) {
      const cases: [string, string, string][] = [
        ["DELETE", "/api/messages/sms", "POST"],
        ["PUT", "/api/conversations", "GET"],
        ["DELETE", "/api/messages/email", "POST"],
      ];
      for (const [method, path, allowed] of cases) {
        const a = await http.request(path, { method, ...(method === "PUT" ? { json: {} } : {}) });
        checkError(a, 405, "method_not_allowed", `${method} ${path}`);
        const allow = (a.headers.get("allow") ?? "").split(",").map((m) => m.trim().toUpperCase());
        check(allow.includes(allowed), `${method} ${path}: Allow is "${a.headers.get("allow")}", without ${allowed}`);
      }
    },
  },
  {
    id: "errors.not-acceptable",
    title: "Accept is honoured with q-values: JSON, application/* and */* are acceptable, anything else is 406",
    tags: ["errors", "http", "negotiation"],
    spec: "§2 Accept: application/json, application/*, */* (with or without parameters) acceptable; none of them → 406; missing is acceptable",
    async run({ http }) {
      const path = "/api/conversations?pageSize=1";
      for (const accept of ["application/json; charset=utf-8", "application/*", "text/html, */*;q=0.1", "text/html;q=0.9, application/json;q=0.5"]) {
        checkStatus(await http.get(path, { headers: { accept } }), 200, `Accept: ${accept}`);
      }
      checkStatus(await http.get(path), 200, "no Accept header");
      for (const accept of ["text/html, application/xml", "application/json;q=0"]) {
        checkError(await http.get(path, { headers: { accept } }), 406, "not_acceptable", `Accept: ${accept}`);
      }
    },
  },
  {
    id: "errors.unsupported-media-type",
    title: "a POST body that is not application/json is 415; parameters and letter case are allowed",
    tags: ["errors", "http", "negotiation"],
    spec: "§2 POST bodies must be application/json (parameters such as charset and any letter case allowed) → otherwise 415",
    async run(ctx) {
      const body = JSON.stringify(smsPayload(ctx));
      for (const contentType of ["text/plain", "application/x-www-form-urlencoded"]) {
        const a = await ctx.http.request("/api/messages/sms", { method: "POST", raw: body, contentType });
        checkError(a, 415, "unsupported_media_type", `Content-Type: ${contentType}`);
      }
      const bare = await ctx.http.request("/api/messages/sms", { method: "POST", raw: body, contentType: null });
      checkError(bare, 415, "unsupported_media_type", "a body without Content-Type");
      const mixed = await ctx.http.request("/api/messages/sms", { method: "POST", raw: JSON.stringify(smsPayload(ctx)), contentType: "Application/JSON; Charset=UTF-8" });
      checkStatus(mixed, 202, "Content-Type: Application/JSON; Charset=UTF-8");
    },
  },
  {
    id: "errors.invalid-json",
    title: "syntactically invalid JSON is 400 invalid_json",
    tags: ["errors", "http"],
    spec: "§2 400 for syntactically invalid JSON (invalid_json)",
    async run({ http }) {
      for (const raw of ['{"from": ', "not json", '{"from": "+15550100",}']) {
        checkError(await http.request("/api/messages/sms", { method: "POST", raw }), 400, "invalid_json", `the body ${raw}`);
      }
    },
  },
  {
    id: "errors.validation-envelope",
    title: "a body breaking the rules is 400 with details [{path, message}] naming each field",
    tags: ["errors", "http", "validation"],
    spec: "§2 details (a list of {path, message}) on validation errors; §3 each rule a 400 naming the field",
    async run({ http }) {
      const a = await http.post("/api/messages/sms", {});
      checkError(a, 400, ["validation_failed", "bad_request"], "an empty object");
      const details = (a.body.details ?? []) as { path: string }[];
      check(details.length > 0, "the 400 of an empty object has no details");
      const named = ["from", "to", "body", "timestamp"].filter((field) => !details.some((d) => d.path === field));
      check(named.length === 0, `the details do not name ${named.join(", ")}`);
      checkError(await http.post("/api/messages/sms", [1, 2]), 400, ["validation_failed", "bad_request"], "a JSON array");
    },
  },
  {
    id: "errors.payload-too-large",
    title: "a body over the request limit is 413 payload_too_large",
    tags: ["errors", "http"],
    spec: "§2 request body limit 256 KiB by default (configurable) → 413",
    async run(ctx) {
      const raw = JSON.stringify(smsPayload(ctx, { body: "x".repeat(OVERSIZED_BYTES) }));
      const a = await ctx.http.request("/api/messages/sms", { method: "POST", raw });
      if (a.status === 400) ctx.skip(`the target accepts bodies of ${OVERSIZED_BYTES / 1024} KiB (its limit was raised), so no 413 can be provoked`);
      checkError(a, 413, "payload_too_large", `a ${OVERSIZED_BYTES / 1024} KiB body`);
    },
  },
  {
    id: "errors.rate-limited",
    title: "a sender over its per-minute limit is 429 rate_limited with Retry-After and RateLimit-* headers",
    tags: ["errors", "ratelimit", "sends"],
    spec: "§3 per-sender limit → 429; §8 every 429 has Retry-After and RateLimit-Limit / RateLimit-Remaining / RateLimit-Reset",
    // Runs first, while the run's per-client bucket is full: every send is charged to it too, and once it is empty
    // the sender's bucket refills about as fast as the sends are let through.
    minTimeoutSecs: 60,
    async run(ctx) {
      const from = ctx.data.phone();
      const to = ctx.data.phone();
      // A few at a time: the 429 comes after the limit's burst (60 by default), and one send after another takes
      // a round trip and a commit each (seconds on an embedded database); concurrent sends share commits.
      for (let sent = 0; sent < SENDER_PROBE_MAX; ) {
        if (ctx.http.rateLimitExhausted) {
          ctx.skip(
            `the per-client limit (${ctx.http.rateLimit} a minute) ran out after ${sent} sends from one sender without a 429: ` +
              "the sender's limit cannot be reached from one client",
          );
        }
        const round = Math.min(SENDER_PROBE_ROUND, SENDER_PROBE_MAX - sent);
        const answers = await Promise.all(
          Array.from({ length: round }, (_, i) =>
            ctx.http.post("/api/messages/sms", smsPayload(ctx, { from, to, body: ctx.data.body(`rate ${sent + i + 1}`) }), { expectRateLimit: true }),
          ),
        );
        sent += round;
        const a = answers.find((x) => x.status !== 202);
        if (!a) continue;
        checkError(a, 429, "rate_limited", `a send from one sender after ${sent - round} accepted`);
        const retryAfter = a.headers.get("retry-after") ?? "";
        check(/^\d+$/.test(retryAfter) && Number(retryAfter) >= 1, `Retry-After is "${retryAfter}", not whole seconds`);
        for (const name of ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]) {
          check(/^\d+$/.test(a.headers.get(name) ?? ""), `the 429 has no ${name}`);
        }
        check(a.headers.get("ratelimit-remaining") === "0", `RateLimit-Remaining of the 429 is ${a.headers.get("ratelimit-remaining")}, not 0`);
        const accepted = answers.filter((x) => x.status === 202).length + sent - round;
        ctx.note(`the sender was refused after ${accepted} accepted sends (RateLimit-Limit ${a.headers.get("ratelimit-limit")})`);
        return;
      }
      // A per-sender limit above what the run may spend is a legitimate setting (API_RATE_LIMIT_PER_SENDER_PER_MIN
      // goes to 10,000,000), so this proves nothing against the contract: say so instead of failing.
      ctx.skip(
        `${SENDER_PROBE_MAX} sends from one sender were all accepted: the target's per-sender limit is above the ${SENDER_PROBE_MAX} ` +
          "sends this case may spend (API_RATE_LIMIT_PER_SENDER_PER_MIN), so its 429 cannot be reached here",
      );
    },
  },
];
