import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { afterResponse, buildTestApp, type TestApp } from "../../helpers/app.ts";
import { emailSend, emailWebhook, get, metricValue, post, smsSend, smsWebhook, UNLIMITED } from "../../helpers/messaging.ts";

// A known sequence of writes on a fresh app, then /metrics must count exactly those.
let t: TestApp;
let text: string;
let conversationId: string;
beforeAll(async () => {
  t = await buildTestApp({ config: UNLIMITED });
  const ok = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await post(t.app, path, body, headers);
    expect(res.status).toBe(202);
    return res;
  };
  conversationId = (await ok("/api/messages/sms", smsSend())).json.conversation_id; // sms outbound 1
  await ok("/api/messages/sms", smsSend()); // sms outbound 2
  await ok("/api/messages/sms", smsSend({ type: "mms", attachments: ["https://x.example.com/a.png"] })); // mms outbound 1
  await ok("/api/messages/email", emailSend()); // email outbound 1
  const keyed = smsSend();
  await ok("/api/messages/sms", keyed, { "idempotency-key": "metrics-1" }); // sms outbound 3
  await ok("/api/messages/sms", keyed, { "idempotency-key": "metrics-1" }); // replay 1
  await ok("/api/messages/sms", keyed, { "idempotency-key": "metrics-1" }); // replay 2
  const hook = smsWebhook();
  await ok("/api/webhooks/sms", hook); // sms inbound 1
  await ok("/api/webhooks/sms", hook); // duplicate 1
  await ok("/api/webhooks/email", emailWebhook()); // email inbound 1
  await post(t.app, "/api/messages/sms", { from: 1 }); // a 400 counts nowhere
  await get(t.app, `/api/conversations/${conversationId}/messages`);
  await get(t.app, "/api/messages/1");
  await afterResponse();
  text = (await get(t.app, "/metrics")).text;
});
afterAll(() => t.close());

describe("Prometheus text", () => {
  test.each([
    ["sms", "outbound", 3],
    ["mms", "outbound", 1],
    ["email", "outbound", 1],
    ["sms", "inbound", 1],
    ["email", "inbound", 1],
  ])("messaging_messages_accepted_total{channel=%p,direction=%p} is %i", (channel, direction, count) => {
    expect(text).toContain("# TYPE messaging_messages_accepted_total counter");
    expect(metricValue(text, "messaging_messages_accepted_total", { channel, direction })).toBe(count);
  });

  test("replays and duplicates are not counted as accepted messages: 7 in total", () => {
    expect(metricValue(text, "messaging_messages_accepted_total")).toBe(7);
  });

  test("messaging_idempotent_replays_total counts the two replays", () => {
    expect(metricValue(text, "messaging_idempotent_replays_total")).toBe(2);
  });

  test("messaging_webhook_duplicates_total counts the one repeated webhook", () => {
    expect(metricValue(text, "messaging_webhook_duplicates_total")).toBe(1);
  });

  test("the latency histogram is labelled by route pattern, never by a concrete id", () => {
    expect(
      metricValue(text, "messaging_http_request_duration_seconds_count", { method: "GET", route: "/api/conversations/:id/messages", status: "200" }),
    ).toBe(1);
    expect(metricValue(text, "messaging_http_request_duration_seconds_count", { method: "GET", route: "/api/messages/:id" })).toBe(1);
    expect(metricValue(text, "messaging_http_request_duration_seconds_count", { method: "POST", route: "/api/messages/sms", status: "202" })).toBe(6);
    expect(metricValue(text, "messaging_http_request_duration_seconds_count", { method: "POST", route: "/api/messages/sms", status: "400" })).toBe(1);
    expect(text).not.toContain(`/api/conversations/${conversationId}/`);
    expect(text).not.toMatch(/route="[^"]*\/\d+[^"]*"/);
  });

  test("no label carries an address", () => {
    expect(text).not.toMatch(/\+1201\d+/);
    expect(text).not.toContain("@example.com");
  });
});

describe("JSON snapshot (Accept: application/json)", () => {
  test("has worker_processed 0 and the accepted, replay and duplicate counts", async () => {
    const res = await get(t.app, "/metrics", { accept: "application/json" });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      worker_processed: 0,
      messages_accepted: 7,
      messages_accepted_outbound: 5,
      messages_accepted_inbound: 2,
      idempotent_replays: 2,
      webhook_duplicates: 1,
    });
  });
});

describe("group commit and coalesced reads in /metrics", () => {
  test("concurrent sends show in messaging_send_batch_size and identical concurrent lists in messaging_coalesced_reads_total", async () => {
    const app = await buildTestApp({ database: t.database, config: UNLIMITED });
    await Promise.all(Array.from({ length: 30 }, () => post(app.app, "/api/messages/sms", smsSend())));
    await Promise.all(Array.from({ length: 10 }, () => get(app.app, "/api/conversations")));
    const text = (await get(app.app, "/metrics")).text;
    const sum = Number(/messaging_send_batch_size_sum (\d+)/.exec(text)?.[1]);
    const batches = Number(/messaging_send_batch_size_count (\d+)/.exec(text)?.[1]);
    expect(sum).toBe(30);
    expect(batches).toBeLessThan(30);
    expect(Number(/messaging_coalesced_reads_total\{list="conversations"\} (\d+)/.exec(text)?.[1])).toBe(9);
  });
});
