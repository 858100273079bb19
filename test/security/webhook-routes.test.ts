import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { AppError } from "../../src/http/errors.ts";
import { jsonBody } from "../../src/http/json-body.ts";
import { webhookSignature } from "../../src/http/webhook-signature.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { signWebhook } from "../../src/security/webhook-signature.ts";
import { afterResponse, buildTestApp, captureLogger, type TestApp } from "../helpers/app.ts";
import { email, get, metricValue, phone, post, smsSend, smsWebhook, TS, UNLIMITED } from "../helpers/messaging.ts";

/**
 * Signed webhooks through the whole app (SPEC §8): what a forger, a replayer or a careless proxy can send to
 * /api/webhooks/* and /api/provider/mock/inbound when MESSAGING_WEBHOOK_SECRETS is set, and what still works.
 */

const SECRET = "whsec-new-5f0c2a91d7e84b36";
const OLD_SECRET = "whsec-old-0d1e2f3a4b5c6d7e";
const TOLERANCE = 300;
const FAILURES = "messaging_webhook_signature_failures_total";
const UNAUTHORIZED = { code: "unauthorized", message: "missing or invalid webhook signature", request_id: expect.any(String) };

const encode = (text: string) => new TextEncoder().encode(text);
const nowSecs = () => Math.floor(Date.now() / 1000);
const BOM = [0xef, 0xbb, 0xbf];

let t: TestApp;
let logs: ReturnType<typeof captureLogger>;
beforeAll(async () => {
  logs = captureLogger("warn");
  t = await buildTestApp({ config: { ...UNLIMITED, webhookSecrets: [SECRET, OLD_SECRET], webhookToleranceSecs: TOLERANCE }, logger: logs.logger });
});
afterAll(() => t.close());

interface Answer {
  status: number;
  json: any;
  text: string;
}

/** POSTs exactly these bytes (no re-encoding on the way), as a provider would. */
async function postBytes(path: string, body: Uint8Array | null, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method: "POST", headers: { "content-type": "application/json", ...headers } };
  if (body !== null) init.body = body;
  const response = await t.app.handle(new Request(`http://localhost${path}`, init));
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, json, text };
}

/** Signs the bytes with `secret` at `at` and posts them. */
const postSigned = (path: string, bytes: Uint8Array, secret = SECRET, at = nowSecs()) =>
  postBytes(path, bytes, { "x-messaging-signature": signWebhook(secret, bytes, at) });

const failures = async (reason: string) => metricValue(await t.metrics.registry.metrics(), FAILURES, { reason });

const mockInbound = () => ({ channel: "email", from: email(), to: email(), body: "mock inbound", attachments: null, timestamp: TS });
const emailWebhook = () => ({ from: email(), to: email(), body: "<p>in</p>", attachments: [], timestamp: TS, xillio_id: `x-${crypto.randomUUID()}` });

const ROUTES: [string, () => Record<string, unknown>][] = [
  ["/api/webhooks/sms", () => smsWebhook()],
  ["/api/webhooks/email", emailWebhook],
  ["/api/provider/mock/inbound", mockInbound],
];

describe("a correct signature is accepted", () => {
  test.each(ROUTES)("POST %s signed with the current secret → 202, stored", async (path, body) => {
    const bytes = encode(JSON.stringify(body()));
    const res = await postSigned(path, bytes);
    expect(res.status).toBe(202);
    const id = String(res.json.id);
    expect(id).toMatch(/^\d+$/);
    expect((await get(t.app, `/api/messages/${id}`)).json).toMatchObject({ id, direction: "inbound", status: "received" });
  });

  test("rotation: a body signed with the old secret is accepted while both are listed", async () => {
    const res = await postSigned("/api/webhooks/sms", encode(JSON.stringify(smsWebhook())), OLD_SECRET);
    expect(res.status).toBe(202);
  });

  test("rotation: a header carrying an unknown-secret v1 and a correct v1 is accepted", async () => {
    const bytes = encode(JSON.stringify(smsWebhook()));
    const at = nowSecs();
    const good = signWebhook(SECRET, bytes, at).split(",v1=")[1];
    const stranger = signWebhook("not-one-of-ours", bytes, at).split(",v1=")[1];
    const res = await postBytes("/api/webhooks/sms", bytes, { "x-messaging-signature": `t=${at},v1=${stranger},v0=legacy,v1=${good}` });
    expect(res.status).toBe(202);
  });

  test("a timestamp inside the tolerance, past or future, is accepted", async () => {
    for (const at of [nowSecs() - TOLERANCE + 30, nowSecs() + TOLERANCE - 30]) {
      expect((await postSigned("/api/webhooks/sms", encode(JSON.stringify(smsWebhook())), SECRET, at)).status).toBe(202);
    }
  });

  test("a body with a UTF-8 byte-order mark, signed over its bytes, verifies and is then handled as before", async () => {
    const body = smsWebhook({ body: "bom body" });
    const bytes = new Uint8Array([...BOM, ...encode(JSON.stringify(body))]);
    const res = await postSigned("/api/webhooks/sms", bytes);
    expect(res.status).toBe(202);
    expect((await get(t.app, `/api/messages/${res.json.id}`)).json).toMatchObject({ body: "bom body", from: body.from });
  });

  test("a replay inside the tolerance passes the signature; the webhook deduplication answers duplicate: true", async () => {
    const bytes = encode(JSON.stringify(smsWebhook()));
    const header = { "x-messaging-signature": signWebhook(SECRET, bytes, nowSecs()) };
    const first = await postBytes("/api/webhooks/sms", bytes, header);
    const replay = await postBytes("/api/webhooks/sms", bytes, header);
    expect(first.status).toBe(202);
    expect(replay.status).toBe(202);
    expect(replay.json).toEqual({ status: "accepted", id: first.json.id, conversation_id: first.json.conversation_id, duplicate: true });
  });

  test("after the signature, the JSON rules still apply: a signed non-JSON media type is 415", async () => {
    const bytes = encode(JSON.stringify(smsWebhook()));
    const res = await postBytes("/api/webhooks/sms", bytes, { "content-type": "text/plain", "x-messaging-signature": signWebhook(SECRET, bytes, nowSecs()) });
    expect(res.status).toBe(415);
  });

  test("after the signature, validation still applies: a signed body missing fields is 400", async () => {
    const bytes = encode(JSON.stringify({ from: phone() }));
    expect((await postSigned("/api/webhooks/sms", bytes)).status).toBe(400);
  });
});

describe("forged, stale and unsigned requests get 401 unauthorized, and the same message whatever the reason", () => {
  const hex = "ab".repeat(32);
  const malformedHeaders: [string, () => string][] = [
    ["empty", () => ""],
    ["no t", () => `v1=${hex}`],
    ["no v1", () => `t=${nowSecs()}`],
    ["only v0", () => `t=${nowSecs()},v0=${hex}`],
    ["non-hex v1", () => `t=${nowSecs()},v1=${"zz".repeat(32)}`],
    ["odd-length v1", () => `t=${nowSecs()},v1=${hex}a`],
    ["short v1", () => `t=${nowSecs()},v1=${hex.slice(0, 40)}`],
    ["non-numeric t", () => `t=now,v1=${hex}`],
    ["11 v1 values", () => [`t=${nowSecs()}`, ...Array.from({ length: 11 }, () => `v1=${hex}`)].join(",")],
    ["a 5 KiB header", () => `t=${nowSecs()},v1=${hex},v0=${"a".repeat(5 * 1024)}`],
    ["a 64 KiB header", () => `t=${nowSecs()},v1=${hex.repeat(1000)}`],
  ];

  test.each(ROUTES)("%s without a signature → 401, nothing stored", async (path, body) => {
    const before = await failures("missing");
    const res = await postBytes(path, encode(JSON.stringify(body())));
    expect(res.status).toBe(401);
    expect(res.json).toEqual(UNAUTHORIZED);
    expect(await failures("missing")).toBe(before + 1);
  });

  test.each(malformedHeaders)("a malformed header (%s) → 401 malformed", async (_name, header) => {
    const before = await failures("malformed");
    const res = await postBytes("/api/webhooks/sms", encode(JSON.stringify(smsWebhook())), { "x-messaging-signature": header() });
    expect(res.status).toBe(401);
    expect(res.json).toEqual(UNAUTHORIZED);
    expect(await failures("malformed")).toBe(before + 1);
  });

  test.each(ROUTES)("%s signed with a secret that is not listed → 401 mismatch", async (path, body) => {
    const before = await failures("mismatch");
    const res = await postSigned(path, encode(JSON.stringify(body())), "whsec-guessed");
    expect(res.status).toBe(401);
    expect(res.json).toEqual(UNAUTHORIZED);
    expect(await failures("mismatch")).toBe(before + 1);
  });

  test.each([
    ["past", -TOLERANCE - 60],
    ["future", TOLERANCE + 60],
  ])("a correctly signed timestamp too far in the %s → 401 stale", async (_when, offset) => {
    const before = await failures("stale");
    const res = await postSigned("/api/webhooks/sms", encode(JSON.stringify(smsWebhook())), SECRET, nowSecs() + offset);
    expect(res.status).toBe(401);
    expect(res.json).toEqual(UNAUTHORIZED);
    expect(await failures("stale")).toBe(before + 1);
  });

  test("a re-serialised body (same JSON, other whitespace or key order) → 401; the original bytes → 202", async () => {
    const value = smsWebhook();
    const original = encode(JSON.stringify(value));
    const header = { "x-messaging-signature": signWebhook(SECRET, original, nowSecs()) };
    const spaced = encode(JSON.stringify(value, null, 2));
    const reordered = encode(JSON.stringify(Object.fromEntries(Object.entries(value).reverse())));
    expect((await postBytes("/api/webhooks/sms", spaced, header)).status).toBe(401);
    expect((await postBytes("/api/webhooks/sms", reordered, header)).status).toBe(401);
    expect((await postBytes("/api/webhooks/sms", original, header)).status).toBe(202);
  });

  test("a BOM is not dropped before verification: signed without it, sent with it → 401", async () => {
    const bytes = encode(JSON.stringify(smsWebhook()));
    const header = { "x-messaging-signature": signWebhook(SECRET, bytes, nowSecs()) };
    expect((await postBytes("/api/webhooks/sms", new Uint8Array([...BOM, ...bytes]), header)).status).toBe(401);
  });

  test("a signature copied from another body → 401", async () => {
    const header = { "x-messaging-signature": signWebhook(SECRET, encode(JSON.stringify(smsWebhook())), nowSecs()) };
    expect((await postBytes("/api/webhooks/sms", encode(JSON.stringify(smsWebhook())), header)).status).toBe(401);
  });

  test("an unsigned invalid body → 401, not 400: nothing is said about the body before the signature", async () => {
    for (const body of ["{not json", "", "[]", JSON.stringify({ from: "x" }), "\xff\xfe"]) {
      const res = await postBytes("/api/webhooks/sms", encode(body));
      expect({ body, status: res.status }).toEqual({ body, status: 401 });
    }
  });

  test("a well-formed but wrong signature on invalid JSON → 401, not 400: the MAC is checked before parsing", async () => {
    const header = { "x-messaging-signature": `t=${nowSecs()},v1=${"00".repeat(32)}` };
    expect((await postBytes("/api/webhooks/sms", encode("{not json"), header)).status).toBe(401);
    expect((await postBytes("/api/webhooks/sms", encode('{"from":"x"}'), header)).status).toBe(401);
    expect((await postBytes("/api/webhooks/sms", encode("{}"), { ...header, "content-type": "text/plain" })).status).toBe(401);
  });

  test("an unsigned body declaring a size over the limit → 401 before the size rule (413) is applied", async () => {
    const res = await postBytes("/api/webhooks/sms", encode("{}"), { "content-length": String(t.config.maxBodyBytes + 1) });
    expect(res.status).toBe(401);
  });

  test("a POST without a body is checked as the empty body it is", async () => {
    expect((await postBytes("/api/webhooks/sms", null)).status).toBe(401);
    expect((await postBytes("/api/webhooks/sms", null, { "x-messaging-signature": signWebhook(SECRET, encode("{}"), nowSecs()) })).status).toBe(401);
    // Signed as empty, it passes the signature and meets the body rules.
    const signedEmpty = await postBytes("/api/webhooks/sms", null, { "x-messaging-signature": signWebhook(SECRET, new Uint8Array(), nowSecs()) });
    expect(signedEmpty.status).toBe(400);
  });

  test.each(["/api/webhooks/sms/", "/api/provider/mock/inbound/", "/api/webhooks/./email", "/api/x/../webhooks/sms"])(
    "another spelling of a protected path (%s) is protected too",
    async (path) => {
      const body = path.includes("mock") ? mockInbound() : path.includes("email") ? emailWebhook() : smsWebhook();
      expect((await postBytes(path, encode(JSON.stringify(body)))).status).toBe(401);
    },
  );

  test("the reason is logged for the operator, and neither the secret nor the signature is", async () => {
    const bytes = encode(JSON.stringify(smsWebhook()));
    const signature = signWebhook("whsec-logged-guess", bytes, nowSecs() - 3600);
    await postBytes("/api/webhooks/sms", bytes, { "x-messaging-signature": signature });
    await afterResponse();
    const line = logs.lines().find((l) => l.detail === "webhook signature refused: stale");
    expect(line).toMatchObject({ level: expect.anything(), msg: "missing or invalid webhook signature" });
    expect(logs.raw()).not.toContain(SECRET);
    expect(logs.raw()).not.toContain(OLD_SECRET);
    expect(logs.raw()).not.toContain(signature.split("v1=")[1]!);
  });
});

describe("the last check before validation, by route pattern (the plugin alone)", () => {
  // A protects() that knows only the exact pattern: the router also sends "/hook/" to it, which the arrival
  // check does not recognise; the check by matched route must still refuse it.
  const CLOCK = 2_000_000_000;
  const tiny = () =>
    new Elysia()
      .onError(({ error }) => (error instanceof AppError ? new Response(error.code, { status: error.status }) : undefined))
      .use(webhookSignature({ secrets: [SECRET], toleranceSecs: 60, protects: (p) => p === "/hook", metrics: createMetrics({ version: "test" }), nowSecs: () => CLOCK }))
      .use(jsonBody({ maxBodyBytes: 4096, bodyTimeoutMs: 1000, skipAccept: () => true }))
      .post("/hook", ({ body }) => body);
  const call = async (path: string, bytes: Uint8Array, signature?: string) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (signature !== undefined) headers["x-messaging-signature"] = signature;
    return (await tiny().handle(new Request(`http://localhost${path}`, { method: "POST", headers, body: bytes }))).status;
  };

  test("a path spelling the arrival check misses is still refused unsigned, and accepted signed", async () => {
    const bytes = encode('{"a":1}');
    expect(await call("/hook/", bytes)).toBe(401);
    expect(await call("/hook/", bytes, signWebhook(SECRET, encode('{"a":2}'), CLOCK))).toBe(401);
    expect(await call("/hook/", bytes, signWebhook(SECRET, bytes, CLOCK))).toBe(200);
  });

  test("freshness is judged against the injected clock", async () => {
    const bytes = encode('{"a":1}');
    expect(await call("/hook", bytes, signWebhook(SECRET, bytes, CLOCK - 60))).toBe(200);
    expect(await call("/hook", bytes, signWebhook(SECRET, bytes, CLOCK - 61))).toBe(401);
    expect(await call("/hook/", bytes, signWebhook(SECRET, bytes, CLOCK + 61))).toBe(401);
  });
});

describe("the rest of the API is unaffected by webhook secrets", () => {
  test("POST /api/messages/sms needs no signature", async () => {
    expect((await post(t.app, "/api/messages/sms", smsSend())).status).toBe(202);
  });

  test("the mock's reports and config routes need no signature", async () => {
    expect((await get(t.app, "/api/provider/mock/config")).status).toBe(200);
    expect((await post(t.app, "/api/provider/mock/reports", { message_id: "999999999", status: "delivered" })).status).toBe(404);
  });

  test("their JSON rules are unchanged: a non-JSON media type is still 415 without reading the body, bad JSON 400", async () => {
    expect((await postBytes("/api/messages/sms", encode("{}"), { "content-type": "text/plain" })).status).toBe(415);
    expect((await postBytes("/api/messages/sms", encode("{not json"))).status).toBe(400);
  });

  test("the Idempotency-Key fingerprint is taken over the bytes as sent: the same JSON with a BOM is another body", async () => {
    const body = encode(JSON.stringify(smsSend()));
    const key = { "idempotency-key": `bom-${crypto.randomUUID()}` };
    expect((await postBytes("/api/messages/sms", body, key)).status).toBe(202);
    expect((await postBytes("/api/messages/sms", body, key)).status).toBe(202);
    expect((await postBytes("/api/messages/sms", new Uint8Array([...BOM, ...body]), key)).status).toBe(422);
  });
});

describe("without secrets (today's behaviour)", () => {
  let open: TestApp;
  beforeAll(async () => {
    open = await buildTestApp({ config: UNLIMITED });
  });
  afterAll(() => open.close());

  test.each(ROUTES)("%s accepts an unsigned request", async (path, body) => {
    expect((await post(open.app, path, body())).status).toBe(202);
  });

  test("a signature header, even a wrong one, is ignored", async () => {
    expect((await post(open.app, "/api/webhooks/sms", smsWebhook(), { "x-messaging-signature": "garbage" })).status).toBe(202);
  });
});
