import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, request, type TestApp, type TestResponse } from "../helpers/app.ts";
import { countRows, emailSend, get, metricValue, phone, post, smsSend, smsWebhook } from "../helpers/messaging.ts";

// app.handle has no socket, so every request comes from the same client key: the per-IP bucket is shared.
// Each describe builds its own app (its own buckets) over the one database of the file.
let base: TestApp;
beforeAll(async () => {
  base = await buildTestApp();
});
afterAll(() => base.close());

function expect429(res: TestResponse, limit: number) {
  expect(res.status).toBe(429);
  expect(res.json).toEqual({ code: "rate_limited", message: expect.any(String), request_id: expect.any(String) });
  expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  expect(res.headers.get("ratelimit-limit")).toBe(String(limit));
  expect(res.headers.get("ratelimit-remaining")).toBe("0");
  expect(Number(res.headers.get("ratelimit-reset"))).toBeGreaterThanOrEqual(1);
}

describe("per-IP token bucket (API_RATE_LIMIT_PER_IP_PER_MIN=5)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database: base.database, config: { rateLimitPerIpPerMin: 5, rateLimitPerSenderPerMin: 1000 } });
  });

  test("allows a burst of 5 with RateLimit headers counting down, then answers 429 rate_limited with Retry-After", async () => {
    const remaining: (string | null)[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await get(t.app, "/api/conversations");
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit-limit")).toBe("5");
      remaining.push(res.headers.get("ratelimit-remaining"));
    }
    expect(remaining).toEqual(["4", "3", "2", "1", "0"]);
    const sixth = await get(t.app, "/api/conversations");
    expect429(sixth, 5);
    expect(Number(sixth.headers.get("retry-after"))).toBeLessThanOrEqual(12);
  });

  test("the limit covers every /api route, sends included, and a limited send stores nothing", async () => {
    const before = await countRows(t.database, "messages");
    expect429(await post(t.app, "/api/messages/sms", smsSend()), 5);
    expect429(await post(t.app, "/api/webhooks/sms", smsWebhook()), 5);
    expect429(await request(t.app, "PUT", "/api/provider/mock/config", { body: { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null } }), 5);
    expect(await countRows(t.database, "messages")).toBe(before);
  });

  test("/healthz, /readyz, /metrics and the API reference are not limited", async () => {
    for (let i = 0; i < 10; i++) expect((await get(t.app, "/healthz")).status).toBe(200);
    expect((await get(t.app, "/readyz")).status).toBe(200);
    expect((await get(t.app, "/metrics")).status).toBe(200);
    expect((await get(t.app, "/openapi.json")).status).toBe(200);
  });

  test("refusals are counted as messaging_rate_limited_total{limit=\"ip\"}", async () => {
    const text = (await get(t.app, "/metrics")).text;
    expect(metricValue(text, "messaging_rate_limited_total", { limit: "ip" })).toBe(4);
  });

  test("another app instance has its own buckets (the limit is per process)", async () => {
    const other = await buildTestApp({ database: base.database, config: { rateLimitPerIpPerMin: 5 } });
    expect((await get(other.app, "/api/conversations")).status).toBe(200);
  });
});

describe("per-sender limit (API_RATE_LIMIT_PER_SENDER_PER_MIN=3)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database: base.database, config: { rateLimitPerIpPerMin: 1000, rateLimitPerSenderPerMin: 3 } });
  });

  test("the 4th send from one normalized sender, however it is written, answers 429 with the RateLimit headers", async () => {
    const spellings = ["+1 (201) 555-0100", "+12015550100", "+1.201.555.0100"];
    for (const from of spellings) expect((await post(t.app, "/api/messages/sms", smsSend({ from }))).status).toBe(202);
    const before = await countRows(t.database, "messages");
    const fourth = await post(t.app, "/api/messages/sms", smsSend({ from: "+1-201-555-0100", type: "mms", attachments: ["https://x.example.com/a.png"] }));
    expect429(fourth, 3);
    expect(await countRows(t.database, "messages")).toBe(before);
  });

  test("another sender is still served", async () => {
    expect((await post(t.app, "/api/messages/sms", smsSend({ from: phone() }))).status).toBe(202);
  });

  test("the same digits without + are a different sender", async () => {
    expect((await post(t.app, "/api/messages/sms", smsSend({ from: "12015550100" }))).status).toBe(202);
  });

  test("email senders are normalized too: User+a@Example.com and user@example.com share one budget", async () => {
    for (const from of ["User+a@Example.com", "user@example.com", "USER+b@example.com"]) {
      expect((await post(t.app, "/api/messages/email", emailSend({ from }))).status).toBe(202);
    }
    expect429(await post(t.app, "/api/messages/email", emailSend({ from: "user@EXAMPLE.com" })), 3);
  });

  test("inbound webhooks from a limited sender are not refused (the limit is on sending)", async () => {
    const res = await post(t.app, "/api/webhooks/sms", smsWebhook({ from: "+12015550100" }));
    expect(res.status).toBe(202);
  });

  test("refusals are counted as messaging_rate_limited_total{limit=\"sender\"}", async () => {
    const text = (await get(t.app, "/metrics")).text;
    expect(metricValue(text, "messaging_rate_limited_total", { limit: "sender" })).toBe(2);
  });
});
