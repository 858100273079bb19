import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, request, type TestApp } from "../helpers/app.ts";
import { concurrently, countJobs, countRows, emailSend, get, phone, post, smsSend, smsWebhook, UNLIMITED } from "../helpers/messaging.ts";

// A smoke of the write and read paths on both databases `serve` can run on: a fresh PostgreSQL database and
// the embedded PGlite (one connection, so concurrency is serialized there). The same promises must hold on both.
describe.each(["postgres", "embedded"] as const)("on %s", (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database: kind, config: UNLIMITED });
  });
  afterAll(() => t.close());

  const a = phone();
  const b = phone();

  test("the first send answers 202 with ids \"1\" and is committed with its delivery job", async () => {
    const res = await post(t.app, "/api/messages/sms", smsSend({ from: a, to: b, timestamp: "2024-01-01T00:00:01Z", body: "first" }));
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ status: "accepted", id: "1", conversation_id: "1" });
    expect(await countJobs(t.database, "message_id = 1")).toBe(1);
  });

  test("a webhook reply lands in the same conversation as inbound/received, and a repeat is deduplicated", async () => {
    const hook = smsWebhook({ from: b, to: a, timestamp: "2024-01-01T00:00:00Z", body: "earlier reply" });
    const res = await post(t.app, "/api/webhooks/sms", hook);
    expect(res.status).toBe(202);
    expect(res.json.conversation_id).toBe("1");
    const again = await post(t.app, "/api/webhooks/sms", hook);
    expect(again.status).toBe(202);
    expect(again.json.id).toBe(res.json.id);
    expect(await countJobs(t.database, "message_id = $1", [res.json.id])).toBe(0);
  });

  test("reads list the conversation and its messages in timestamp order", async () => {
    const list = await get(t.app, "/api/conversations");
    expect(list.status).toBe(200);
    expect(list.json.items[0]).toMatchObject({ id: "1", channel: "sms", message_count: 2, last_activity_at: "2024-01-01T00:00:01.000Z" });
    const messages = await get(t.app, "/api/conversations/1/messages");
    expect(messages.json.items.map((m: { body: string; direction: string }) => [m.body, m.direction])).toEqual([
      ["earlier reply", "inbound"],
      ["first", "outbound"],
    ]);
    expect(messages.json.meta).toEqual({ page: 1, page_size: 50, total: 2, next_cursor: null });
    expect((await get(t.app, "/api/conversations/999/messages")).status).toBe(404);
  });

  test("an email send is its own conversation with its HTML body verbatim", async () => {
    const html = "<p>Hi <b>there</b></p>";
    const res = await post(t.app, "/api/messages/email", emailSend({ body: html }));
    expect(res.status).toBe(202);
    expect(res.json.conversation_id).not.toBe("1");
    expect((await get(t.app, `/api/messages/${res.json.id}`)).json).toMatchObject({ body: html, channel: "email", attempts: [] });
  });

  test("idempotency: replay with Idempotent-Replayed, 422 on another body, nothing stored twice", async () => {
    const body = smsSend();
    const first = await post(t.app, "/api/messages/sms", body, { "idempotency-key": `parity-${kind}` });
    expect(first.status).toBe(202);
    const before = await countRows(t.database, "messages");
    const replay = await post(t.app, "/api/messages/sms", body, { "idempotency-key": `parity-${kind}` });
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json).toEqual(first.json);
    const reused = await post(t.app, "/api/messages/sms", { ...body, body: "other" }, { "idempotency-key": `parity-${kind}` });
    expect(reused.status).toBe(422);
    expect(await countRows(t.database, "messages")).toBe(before);
  });

  test("concurrent requests with one key store one message and never answer 5xx", async () => {
    const body = smsSend({ body: `concurrent key ${kind}` });
    const responses = await concurrently(5, () => post(t.app, "/api/messages/sms", body, { "idempotency-key": `race-${kind}` }));
    for (const r of responses) expect([202, 409]).toContain(r.status);
    expect(await countRows(t.database, "messages", "body = $1", [body.body])).toBe(1);
  });

  test("20 concurrent first messages between a new pair make one conversation with message_count 20", async () => {
    const x = phone();
    const y = phone();
    const responses = await concurrently(20, (i) => post(t.app, "/api/messages/sms", smsSend({ from: i % 2 ? x : y, to: i % 2 ? y : x })));
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(202));
    const ids = new Set(responses.map((r) => r.json.conversation_id));
    expect(ids.size).toBe(1);
    const [row] = await t.database.sql.query<{ message_count: number }>("SELECT message_count FROM conversations WHERE id = $1", [[...ids][0]]);
    expect(row!.message_count).toBe(20);
  });

  test("10 concurrent deliveries of one webhook store one message", async () => {
    const hook = smsWebhook();
    const responses = await concurrently(10, () => post(t.app, "/api/webhooks/sms", hook));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(202));
    expect(new Set(responses.map((r) => r.json.id)).size).toBe(1);
    expect(await countRows(t.database, "messages", "provider_message_id = $1", [hook.messaging_provider_id])).toBe(1);
  });

  test("the mock config is stored and read back", async () => {
    const config = { timeout_pct: 10, error_pct: 10, ratelimit_pct: 10, seed: 1, latency_ms: 5, delivery_report_pct: 20, breaker_open_secs: 7 };
    expect((await request(t.app, "PUT", "/api/provider/mock/config", { body: config })).status).toBe(200);
    expect((await get(t.app, "/api/provider/mock/config")).json).toEqual(config);
  });

  // Last: it closes the database.
  test("once the database is closed, a send, a webhook and a read answer 503 with Retry-After", async () => {
    await t.database.close();
    for (const [method, path, body] of [
      ["POST", "/api/messages/sms", smsSend()],
      ["POST", "/api/webhooks/sms", smsWebhook()],
      ["GET", "/api/conversations", undefined],
    ] as const) {
      const res = await request(t.app, method, path, { body });
      expect(res.status).toBe(503);
      expect(res.json.code).toBe("service_unavailable");
      expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    }
  });

  test("once the database is closed, a send never answers 202", async () => {
    await t.database.close().catch(() => {});
    const res = await post(t.app, "/api/messages/sms", smsSend());
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(res.json.code).toMatch(/^(service_unavailable|internal_error)$/);
  });
});
