import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type DatabaseHandle, openPostgres } from "../../../src/db/client.ts";
import { buildTestApp, request, type TestApp } from "../../helpers/app.ts";
import { emailSend, emailWebhook, smsSend, smsWebhook, UNLIMITED } from "../../helpers/messaging.ts";

// "202 means committed": when the database cannot be reached, every route that needs it answers
// 503 service_unavailable with Retry-After — never a 202 (nothing was stored) and never a 500.

// Every row has all five fields: bun reads a test function declaring more parameters than its row as a done callback.
const requests: [string, string, string, () => unknown, Record<string, string>][] = [
  ["send sms", "POST", "/api/messages/sms", () => smsSend(), {}],
  ["send mms", "POST", "/api/messages/sms", () => smsSend({ type: "mms", attachments: ["https://x.example.com/a.png"] }), {}],
  ["send email", "POST", "/api/messages/email", () => emailSend(), {}],
  ["send with an Idempotency-Key", "POST", "/api/messages/sms", () => smsSend(), { "idempotency-key": "down-1" }],
  ["sms webhook", "POST", "/api/webhooks/sms", () => smsWebhook(), {}],
  ["email webhook", "POST", "/api/webhooks/email", () => emailWebhook(), {}],
  ["mock inbound", "POST", "/api/provider/mock/inbound", () => ({ ...smsSend(), channel: "sms" }), {}],
  ["list conversations", "GET", "/api/conversations", () => undefined, {}],
  ["list messages", "GET", "/api/conversations/1/messages", () => undefined, {}],
  ["read a message", "GET", "/api/messages/1", () => undefined, {}],
  ["read the mock config", "GET", "/api/provider/mock/config", () => undefined, {}],
  [
    "replace the mock config",
    "PUT",
    "/api/provider/mock/config",
    () => ({ timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null }),
    {},
  ],
];

function expectUnavailable(res: Awaited<ReturnType<typeof request>>) {
  expect(res.status).toBe(503);
  expect(res.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
  expect(res.json).toEqual({ code: "service_unavailable", message: expect.any(String), request_id: expect.any(String) });
  expect(res.json.request_id).toBe(res.headers.get("x-request-id")!);
}

// postgres.js backs off between failed connection attempts (up to 20 s), so each case gets its own handle
// and app: what is proven is the answer to a request, not how long a pool keeps retrying.
describe("a PostgreSQL that refuses connections (closed port)", () => {
  const opened: DatabaseHandle[] = [];
  async function deadApp(): Promise<TestApp> {
    const dead = openPostgres("postgres://postgres@127.0.0.1:1/x", 2);
    opened.push(dead);
    return buildTestApp({ database: dead, migrate: false, config: UNLIMITED });
  }
  afterAll(() => Promise.all(opened.map((d) => d.close().catch(() => {}))));

  test.each(requests)("%s answers 503 service_unavailable with Retry-After", async (_name, method, path, body, headers) => {
    const t = await deadApp();
    expectUnavailable(await request(t.app, method, path, { body: body(), headers }));
  });

  test("a burst of sends gets only 503s: no 202, no 500, and the metrics count them", async () => {
    const t = await deadApp();
    const responses = await Promise.all(Array.from({ length: 10 }, () => request(t.app, "POST", "/api/messages/sms", { body: smsSend() })));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(503));
    const metrics = await request(t.app, "GET", "/metrics", { headers: { accept: "application/json" } });
    expect(metrics.json.database_unavailable).toBe(10);
    expect(metrics.json.messages_accepted).toBe(0);
  });

  test("/healthz still answers 200 (liveness does not depend on the database)", async () => {
    const t = await deadApp();
    expect((await request(t.app, "GET", "/healthz")).status).toBe(200);
  });
});

describe("a real database closed under the running app", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ config: UNLIMITED });
  });
  afterAll(() => t.close());

  test("sends answer 202 while the database is open, then 503 with Retry-After once it is closed", async () => {
    expect((await request(t.app, "POST", "/api/messages/sms", { body: smsSend() })).status).toBe(202);
    await t.database.close();
    expectUnavailable(await request(t.app, "POST", "/api/messages/sms", { body: smsSend() }));
  });

  test.each(requests)("after the close, %s answers 503", async (_name, method, path, body, headers) => {
    expectUnavailable(await request(t.app, method, path, { body: body(), headers }));
  });
});
