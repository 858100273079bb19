/**
 * Which bucket a request is charged to with auth on (SPEC §8, issue 21): an authenticated request to its API key
 * (MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN, or the key's own limit), a request that does not authenticate to its
 * client address, a provider's webhook routes to the provider; every 429 with the refusing bucket's headers.
 * app.handle has no socket, so every request here comes from one client address.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApiKey, updateApiKeyRateLimit } from "../../src/security/api-keys.ts";
import { buildTestApp, request, type TestApp, type TestResponse } from "../helpers/app.ts";
import { metricValue, smsSend } from "../helpers/messaging.ts";

let base: TestApp;
beforeAll(async () => {
  base = await buildTestApp();
});
afterAll(() => base.close());

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

function expect429(res: TestResponse, limit: number, message: string) {
  expect(res.status).toBe(429);
  expect(res.json).toEqual({ code: "rate_limited", message: expect.stringContaining(message), request_id: expect.any(String) });
  expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
  expect(res.headers.get("ratelimit-limit")).toBe(String(limit));
  expect(res.headers.get("ratelimit-remaining")).toBe("0");
  expect(Number(res.headers.get("ratelimit-reset"))).toBeGreaterThanOrEqual(1);
}

describe("auth on: per key, per IP only without a key", () => {
  const settings = { auth: "on", host: "127.0.0.1", rateLimitPerKeyPerMin: 5, rateLimitPerIpPerMin: 3, rateLimitPerSenderPerMin: 1000 } as const;
  let t: TestApp;
  let a: string;
  let b: string;
  let own: string;
  beforeAll(async () => {
    t = await buildTestApp({ database: base.database, config: settings });
    a = (await createApiKey(t.database.sql, { name: "a", scopes: ["send", "read", "admin"] })).key;
    b = (await createApiKey(t.database.sql, { name: "b", scopes: ["send", "read", "admin"] })).key;
    own = (await createApiKey(t.database.sql, { name: "own", scopes: ["read"], rateLimitPerMin: 8 })).key;
  });

  test("one key from one address gets its per-key burst (5), far above the per-IP limit (3), then 429 naming the key", async () => {
    const remaining: (string | null)[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await request(t.app, "GET", "/api/conversations", { headers: bearer(a) });
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit-limit")).toBe("5");
      remaining.push(res.headers.get("ratelimit-remaining"));
    }
    expect(remaining).toEqual(["4", "3", "2", "1", "0"]);
    expect429(await request(t.app, "GET", "/api/conversations", { headers: bearer(a) }), 5, "this API key");
    expect429(await request(t.app, "POST", "/api/messages/sms", { headers: bearer(a), body: smsSend() }), 5, "this API key");
  });

  test("another key from the same address has its own bucket", async () => {
    const res = await request(t.app, "GET", "/api/conversations", { headers: bearer(b) });
    expect(res.status).toBe(200);
    expect(res.headers.get("ratelimit-remaining")).toBe("4");
  });

  test("a key's own limit replaces the default, and `keys update` changes it (read by the verifier once its cache expires)", async () => {
    for (let i = 0; i < 8; i++) expect((await request(t.app, "GET", "/api/conversations", { headers: bearer(own) })).status).toBe(200);
    expect429(await request(t.app, "GET", "/api/conversations", { headers: bearer(own) }), 8, "this API key");
    const prefix = own.slice(4, 14);
    const updated = await updateApiKeyRateLimit(t.database.sql, prefix, 100);
    expect(updated?.rateLimitPerMin).toBe(100);
    const fresh = await buildTestApp({ database: base.database, config: settings });
    const res = await request(fresh.app, "GET", "/api/conversations", { headers: bearer(own) });
    expect(res.status).toBe(200);
    expect(res.headers.get("ratelimit-limit")).toBe("100");
  });

  test("requests without a key are charged to the address (3), open routes included; a wrong key is the auth-failure counter's", async () => {
    const open = await buildTestApp({ database: base.database, config: { ...settings, authFailureLimit: 1000 } });
    // A wrong key does not spend the address's budget: it answers 401 however often.
    for (let i = 0; i < 5; i++) expect((await request(open.app, "GET", "/api/conversations", { headers: bearer(`msg_${"a".repeat(10)}_${"x".repeat(43)}`) })).status).toBe(401);
    expect((await request(open.app, "GET", "/api/conversations")).status).toBe(401);
    expect((await request(open.app, "POST", "/api/webhooks/sms", { body: {} })).status).not.toBe(429);
    expect((await request(open.app, "GET", "/api/conversations")).status).toBe(401);
    expect429(await request(open.app, "GET", "/api/conversations"), 3, "from this client");
    expect429(await request(open.app, "POST", "/api/webhooks/sms", { body: {} }), 3, "from this client");
    // A good key is still served: its bucket is the key's.
    expect((await request(open.app, "GET", "/api/conversations", { headers: bearer(b) })).status).toBe(200);
    const metrics = (await request(open.app, "GET", "/metrics")).text;
    expect(metricValue(metrics, "messaging_rate_limited_total", { limit: "ip" })).toBe(2);
  });

  test("refusals per key are counted as messaging_rate_limited_total{limit=\"key\"}", async () => {
    const text = (await request(t.app, "GET", "/metrics")).text;
    expect(metricValue(text, "messaging_rate_limited_total", { limit: "key" })).toBe(3);
  });
});

describe("the auth-failure counter counts wrong keys, not requests without one", () => {
  test("requests without a key answer 401 however many (the per-IP limit is theirs); two wrong keys block the address", async () => {
    const t = await buildTestApp({ database: base.database, config: { auth: "on", authFailureLimit: 2, authFailureWindowSecs: 60, rateLimitPerIpPerMin: 1000 } });
    const good = (await createApiKey(t.database.sql, { name: "good", scopes: ["read"] })).key;
    for (let i = 0; i < 6; i++) expect((await request(t.app, "GET", "/api/conversations")).status).toBe(401);
    expect((await request(t.app, "GET", "/api/conversations", { headers: bearer(good) })).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await request(t.app, "GET", "/api/conversations", { headers: bearer(`msg_${"b".repeat(10)}_${"y".repeat(43)}`) })).status).toBe(401);
    const blocked = await request(t.app, "GET", "/api/conversations", { headers: bearer(good) });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThanOrEqual(59);
    // Like every 429, the limit that refused it in the RateLimit-* headers.
    expect(blocked.headers.get("ratelimit-limit")).toBe("2");
    expect(blocked.headers.get("ratelimit-remaining")).toBe("0");
    expect(blocked.headers.get("ratelimit-reset")).toBe(blocked.headers.get("retry-after"));
  });
});

describe("provider webhook routes: one bucket per configured provider", () => {
  test("a configured provider's routes share its bucket at the per-key limit; an unknown provider name is charged per IP", async () => {
    const t = await buildTestApp({
      database: base.database,
      config: {
        auth: "on",
        rateLimitPerKeyPerMin: 4,
        rateLimitPerIpPerMin: 2,
        providers: [
          { kind: "sendgrid", name: "mail", channels: ["email"] },
          { kind: "sendgrid", name: "other", channels: ["email"] },
        ] as never,
      },
    });
    const hit = (name: string) => request(t.app, "POST", `/api/webhooks/sendgrid/${name}/events`, { body: [] });
    const limits: (string | null)[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await hit("mail");
      expect(res.status).not.toBe(429);
      limits.push(res.headers.get("ratelimit-limit"));
    }
    expect(limits).toEqual(["4", "4", "4", "4"]);
    expect429(await hit("mail"), 4, "for this provider");
    // The other provider has its own bucket, and the client address's budget was not spent by the webhooks.
    expect((await hit("other")).status).not.toBe(429);
    expect((await request(t.app, "GET", "/api/conversations")).headers.get("ratelimit-remaining")).toBe("1");
    expect((await hit("nobody")).headers.get("ratelimit-limit")).toBe("2");
  });
});

describe("auth off: every request per IP, as before", () => {
  test("a key sent anyway does not change the bucket", async () => {
    const t = await buildTestApp({ database: base.database, config: { auth: "off", rateLimitPerKeyPerMin: 100, rateLimitPerIpPerMin: 2 } });
    const key = (await createApiKey(t.database.sql, { name: "ignored", scopes: ["read"] })).key;
    expect((await request(t.app, "GET", "/api/conversations", { headers: bearer(key) })).headers.get("ratelimit-limit")).toBe("2");
    expect((await request(t.app, "GET", "/api/conversations")).status).toBe(200);
    expect429(await request(t.app, "GET", "/api/conversations", { headers: bearer(key) }), 2, "from this client");
  });
});
