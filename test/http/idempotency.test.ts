import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, type TestApp, type TestResponse } from "../helpers/app.ts";
import { concurrently, countJobs, countRows, emailSend, emailWebhook, phone, post, smsSend, smsWebhook, UNLIMITED } from "../helpers/messaging.ts";

// SPEC §5 through the HTTP API, on one PostgreSQL database. Every test uses its own key.
let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: UNLIMITED });
});
afterAll(() => t.close());

const key = () => `key-${crypto.randomUUID()}`;
const send = (body: unknown, k: string, app = t.app, path = "/api/messages/sms") => post(app, path, body, { "idempotency-key": k });
const messages = () => countRows(t.database, "messages");

function expectFresh(res: TestResponse) {
  expect(res.status).toBe(202);
  expect(res.headers.has("idempotent-replayed")).toBe(false);
}

describe("replay", () => {
  test("the same key and body replays the first response with Idempotent-Replayed: true and stores nothing", async () => {
    const k = key();
    const body = smsSend();
    const first = await send(body, k);
    expectFresh(first);
    const before = await messages();
    const again = await send(body, k);
    expect(again.status).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.text).toBe(first.text);
    expect(await messages()).toBe(before);
    expect(await countJobs(t.database)).toBe(await countRows(t.database, "messages", "direction = 'outbound'"));
  });

  test("a replay is served as often as asked, always the same body", async () => {
    const k = key();
    const body = emailSend();
    const first = await send(body, k, t.app, "/api/messages/email");
    for (let i = 0; i < 3; i++) {
      const r = await send(body, k, t.app, "/api/messages/email");
      // The same bytes, key order included: the stored copy comes back from jsonb, which sorts keys.
      expect(r.text).toBe(first.text);
      expect(r.headers.get("idempotent-replayed")).toBe("true");
    }
  });

  test("concurrent retries of a completed request are all replays, never 409", async () => {
    const k = key();
    const body = emailSend();
    const first = await send(body, k, t.app, "/api/messages/email");
    const replays = await concurrently(5, () => send(body, k, t.app, "/api/messages/email"));
    for (const r of replays) {
      expect(r.status).toBe(202);
      expect(r.json).toEqual(first.json);
      expect(r.headers.get("idempotent-replayed")).toBe("true");
    }
  });

  test("webhooks honour the key too: a replay is marked, a duplicate provider id without a key is not", async () => {
    const k = key();
    const body = smsWebhook();
    const first = await send(body, k, t.app, "/api/webhooks/sms");
    expectFresh(first);
    const replay = await send(body, k, t.app, "/api/webhooks/sms");
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.text).toBe(first.text);
    const duplicate = await post(t.app, "/api/webhooks/sms", body);
    expect(duplicate.headers.has("idempotent-replayed")).toBe(false);
    expect(duplicate.json.id).toBe(first.json.id);
  });

  test("the email webhook replays under its key", async () => {
    const k = key();
    const body = emailWebhook();
    const first = await send(body, k, t.app, "/api/webhooks/email");
    const replay = await send(body, k, t.app, "/api/webhooks/email");
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json).toEqual(first.json);
  });
});

describe("conflicts", () => {
  test("the same key with a different body answers 422 idempotency_key_reused and stores nothing", async () => {
    const k = key();
    const body = smsSend();
    await send(body, k);
    const before = await messages();
    const res = await send({ ...body, body: "something else" }, k);
    expect(res.status).toBe(422);
    expect(res.json).toEqual({ code: "idempotency_key_reused", message: expect.any(String), request_id: expect.any(String) });
    expect(await messages()).toBe(before);
  });

  test("keys are scoped per route: one key on the sms and the email route makes two messages", async () => {
    const k = key();
    const sms = await send(smsSend(), k, t.app, "/api/messages/sms");
    const mail = await send(emailSend(), k, t.app, "/api/messages/email");
    expectFresh(sms);
    expectFresh(mail);
    expect(mail.json.id).not.toBe(sms.json.id);
    const hook = await send(smsWebhook(), k, t.app, "/api/webhooks/sms");
    expectFresh(hook);
  });

  test("two concurrent requests with one key and body store exactly one message; the other gets 409 or the replay", async () => {
    const k = key();
    const body = smsSend();
    const responses = await concurrently(2, () => send(body, k));
    expectOneProcessed(responses);
    expect(await countRows(t.database, "messages", "body = $1 AND from_addr = $2", [body.body, body.from])).toBe(1);
  });

  test("ten concurrent requests with one key and body store exactly one message, never a 5xx", async () => {
    const k = key();
    const body = smsSend({ body: `ten ${k}` });
    const responses = await concurrently(10, () => send(body, k));
    expectOneProcessed(responses);
    expect(await countRows(t.database, "messages", "body = $1", [body.body])).toBe(1);
  });

  test("a 409 idempotency_key_in_use carries the envelope and Retry-After", async () => {
    // Race until one request observes the key in flight (almost always within the first round).
    for (let round = 0; round < 20; round++) {
      const k = key();
      const body = smsSend();
      const conflict = (await concurrently(10, () => send(body, k))).find((r) => r.status === 409);
      if (!conflict) continue;
      expect(conflict.json).toEqual({ code: "idempotency_key_in_use", message: expect.any(String), request_id: expect.any(String) });
      expect(conflict.headers.get("retry-after")).toMatch(/^\d+$/);
      return;
    }
    throw new Error("no request ever saw its key in flight");
  });
});

function expectOneProcessed(responses: TestResponse[]) {
  for (const r of responses) expect([202, 409]).toContain(r.status);
  const fresh = responses.filter((r) => r.status === 202 && !r.headers.has("idempotent-replayed"));
  expect(fresh).toHaveLength(1);
  for (const r of responses.filter((x) => x.status === 202)) expect(r.json).toEqual(fresh[0]!.json);
  for (const r of responses.filter((x) => x.status === 409)) expect(r.json.code).toBe("idempotency_key_in_use");
}

describe("keys that are not consumed", () => {
  test("a request that fails validation does not consume its key: a later valid request is processed fresh", async () => {
    const k = key();
    const bad = await send(smsSend({ from: "not a phone" }), k);
    expect(bad.status).toBe(400);
    const good = await send(smsSend(), k);
    expectFresh(good);
    expect(await countRows(t.database, "idempotency_keys", "key = $1", [k])).toBe(1);
  });

  test("a request rejected as malformed JSON does not consume its key", async () => {
    const k = key();
    const bad = await post(t.app, "/api/messages/sms", "{not json", { "idempotency-key": k, "content-type": "application/json" });
    expect(bad.status).toBe(400);
    expectFresh(await send(smsSend(), k));
  });

  test("a request refused by the per-sender limit does not consume its key", async () => {
    const limited = await buildTestApp({ database: t.database, config: { rateLimitPerIpPerMin: 1000, rateLimitPerSenderPerMin: 1 } });
    const from = phone();
    expectFresh(await post(limited.app, "/api/messages/sms", smsSend({ from })));
    const k = key();
    const body = smsSend({ from });
    const refused = await send(body, k, limited.app);
    expect(refused.status).toBe(429);
    expect(await countRows(t.database, "idempotency_keys", "key = $1", [k])).toBe(0);
    // Another instance (its own buckets) then processes the same key fresh, not as a replay of the 429.
    expectFresh(await send(body, k));
  });

  test("replays are not charged to the sender's rate limit", async () => {
    const limited = await buildTestApp({ database: t.database, config: { rateLimitPerIpPerMin: 1000, rateLimitPerSenderPerMin: 2 } });
    const from = phone();
    const k = key();
    const body = smsSend({ from });
    expectFresh(await send(body, k, limited.app));
    for (let i = 0; i < 3; i++) expect((await send(body, k, limited.app)).headers.get("idempotent-replayed")).toBe("true");
    expectFresh(await post(limited.app, "/api/messages/sms", smsSend({ from })));
    expect((await post(limited.app, "/api/messages/sms", smsSend({ from }))).status).toBe(429);
  });

  test("a request refused by the per-IP limit does not consume its key", async () => {
    const limited = await buildTestApp({ database: t.database, config: { rateLimitPerIpPerMin: 1 } });
    expect((await post(limited.app, "/api/messages/sms", smsSend())).status).toBe(202);
    const k = key();
    const body = smsSend();
    expect((await send(body, k, limited.app)).status).toBe(429);
    expectFresh(await send(body, k));
  });
});

describe("invalid keys", () => {
  test.each([
    ["empty", ""],
    ["256 characters", "k".repeat(256)],
    ["containing a space", "has space"],
    ["containing a tab", "tab\there"],
    ["non-ASCII", "clé"],
  ])("a key that is %s answers 400 and stores nothing", async (_case, k) => {
    const before = await messages();
    const res = await send(smsSend(), k);
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("bad_request");
    expect(res.json.details).toEqual([{ path: "header.idempotency-key", message: expect.any(String) }]);
    expect(await messages()).toBe(before);
  });

  test("a key of exactly 255 visible ASCII characters is accepted", async () => {
    const k = `${crypto.randomUUID()}${"~".repeat(219)}`;
    expect(k).toHaveLength(255);
    expectFresh(await send(smsSend(), k));
  });

  test("a key of one character is accepted", async () => {
    expectFresh(await send(smsSend(), "!"));
  });
});

describe("retention", () => {
  test("stored keys survive a new app instance on the same database: the replay still works", async () => {
    const k = key();
    const body = smsSend();
    const first = await send(body, k);
    const restarted = await buildTestApp({ database: t.database, config: UNLIMITED });
    const replay = await send(body, k, restarted.app);
    expect(replay.status).toBe(202);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json).toEqual(first.json);
    expect((await send({ ...body, body: "changed" }, k, restarted.app)).status).toBe(422);
  });

  test("a key is kept at least 24 hours", async () => {
    const k = key();
    await send(smsSend(), k);
    const [row] = await t.database.sql.query<{ hours: number }>(
      "SELECT extract(epoch FROM expires_at - created_at) / 3600 AS hours FROM idempotency_keys WHERE key = $1",
      [k],
    );
    expect(Number(row!.hours)).toBeGreaterThanOrEqual(24);
  });

  test("an expired key is processed fresh: a new message, no replay header, and the new body is accepted", async () => {
    const k = key();
    const body = smsSend();
    const first = await send(body, k);
    await t.database.sql.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 hour' WHERE key = $1", [k]);
    const again = await send({ ...body, body: "after expiry" }, k);
    expectFresh(again);
    expect(again.json.id).not.toBe(first.json.id);
    // The fresh response replaces the expired one and is replayed from now on.
    const replay = await send({ ...body, body: "after expiry" }, k);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json).toEqual(again.json);
  });
});
