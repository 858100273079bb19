/**
 * API-key authentication through the app, as an attacker would probe it: every kind of bad key gets the same
 * 401, nothing is learned before authenticating (bodies, routes, limits), scopes are enforced, and one client's
 * idempotent response is never replayed to another.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createApiKey, generateApiKey, revokeApiKey } from "../../src/security/api-keys.ts";
import { buildTestApp, request, type TestApp } from "../helpers/app.ts";
import { countRows, smsSend, UNLIMITED } from "../helpers/messaging.ts";

let t: TestApp;
let all: string;
let sendOnly: string;
let readOnly: string;

beforeAll(async () => {
  // The failure throttle has its own test below; here every probe comes from the one in-process client.
  t = await buildTestApp({ config: { ...UNLIMITED, auth: "on", host: "0.0.0.0", authFailureLimit: 1_000_000 } });
  all = (await createApiKey(t.database.sql, { name: "all", scopes: ["send", "read", "admin"] })).key;
  sendOnly = (await createApiKey(t.database.sql, { name: "send", scopes: ["send"] })).key;
  readOnly = (await createApiKey(t.database.sql, { name: "read", scopes: ["read"] })).key;
});
afterAll(() => t.close());

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

function expectUnauthorized(res: { status: number; json: any; headers: Headers }) {
  expect(res.status).toBe(401);
  expect(res.json.code).toBe("unauthorized");
  expect(res.json.message).toBe("a valid API key is required: send Authorization: Bearer <key>");
  expect(res.headers.get("www-authenticate")).toBe("Bearer");
  expect(res.json.request_id).toBeString();
}

describe("every kind of bad key gets the same 401", () => {
  const cases: [string, () => Promise<Record<string, string>>][] = [
    ["no Authorization header", async () => ({})],
    ["an empty header", async () => ({ authorization: "" })],
    ["Basic instead of Bearer", async () => ({ authorization: `Basic ${btoa("user:pass")}` })],
    ["Bearer with nothing", async () => ({ authorization: "Bearer " })],
    ["a malformed key", async () => bearer("msg_short_key")],
    ["a key of another service's format", async () => bearer(`sk_live_${"a".repeat(40)}`)],
    ["an unknown key", async () => bearer(generateApiKey().key)],
    ["a real prefix with a wrong secret", async () => bearer(`msg_${all.split("_")[1]}_${generateApiKey().secret}`)],
    ["an expired key", async () => bearer((await createApiKey(t.database.sql, { name: "e", scopes: ["read"], expiresAt: new Date(Date.now() - 1) })).key)],
    ["a revoked key", async () => {
      const k = await createApiKey(t.database.sql, { name: "r", scopes: ["read"] });
      await revokeApiKey(t.database.sql, k.id);
      return bearer(k.key);
    }],
    ["a key with a trailing stray character", async () => bearer(`${all}!`)],
    ["two keys in one header", async () => ({ authorization: `Bearer ${all} ${all}` })],
    ["a 64 KiB header", async () => bearer(`${all}${"a".repeat(65_536)}`)],
  ];
  test.each(cases)("%s", async (_name, headers) => {
    expectUnauthorized(await request(t.app, "GET", "/api/conversations", { headers: await headers() }));
  });
});

describe("nothing is learned before authenticating", () => {
  test("an invalid body is 401, not 400, and nothing is stored", async () => {
    const before = await countRows(t.database, "messages");
    expectUnauthorized(await request(t.app, "POST", "/api/messages/sms", { body: { from: 1 } }));
    expectUnauthorized(await request(t.app, "POST", "/api/messages/sms", { body: "{not json", headers: { "content-type": "application/json" } }));
    expectUnauthorized(await request(t.app, "POST", "/api/messages/sms", { body: "x", headers: { "content-type": "text/plain" } }));
    expect(await countRows(t.database, "messages")).toBe(before);
  });

  test("an unknown /api route is 401, not 404; a wrong method is 401, not 405", async () => {
    expectUnauthorized(await request(t.app, "GET", "/api/secret-admin-panel"));
    expectUnauthorized(await request(t.app, "DELETE", "/api/conversations"));
  });

  test("an oversized declared body is 401, not 413", async () => {
    expectUnauthorized(await request(t.app, "POST", "/api/messages/sms", { body: "x".repeat(300_000), headers: { "content-type": "application/json" } }));
  });

  test("a valid key then gets the real answers (400, 404)", async () => {
    expect((await request(t.app, "POST", "/api/messages/sms", { body: { from: 1 }, headers: bearer(all) })).status).toBe(400);
    expect((await request(t.app, "GET", "/api/secret-admin-panel", { headers: bearer(all) })).status).toBe(404);
  });
});

describe("open paths", () => {
  test.each(["/healthz", "/readyz"])("%s needs no key", async (path) => {
    expect((await request(t.app, "GET", path)).status).toBe(200);
  });

  test("the generic webhooks are not open: keyless is 401 (test/security/inbound-webhooks.test.ts has the rest)", async () => {
    const res = await request(t.app, "POST", "/api/webhooks/sms", {
      body: { from: "+12015550123", to: "+12015550124", type: "sms", messaging_provider_id: `p-${crypto.randomUUID()}`, body: "hi", attachments: null, timestamp: "2024-11-01T14:00:00Z" },
    });
    expectUnauthorized(res);
  });

  test("on a public bind, /metrics, /openapi.json and /docs need a key", async () => {
    for (const path of ["/metrics", "/openapi.json", "/docs"]) {
      expectUnauthorized(await request(t.app, "GET", path));
      expect((await request(t.app, "GET", path, { headers: bearer(readOnly) })).status).toBe(200);
    }
  });

  test("bound to loopback they are open, and MESSAGING_OPS_AUTH=on closes them again", async () => {
    const loopback = await buildTestApp({ database: t.database, config: { auth: "on", host: "127.0.0.1" } });
    const strict = await buildTestApp({ database: t.database, config: { auth: "on", host: "127.0.0.1", opsAuth: "on" } });
    for (const path of ["/metrics", "/openapi.json", "/docs"]) {
      expect((await request(loopback.app, "GET", path)).status).toBe(200);
      expectUnauthorized(await request(strict.app, "GET", path));
    }
    // The API itself is never open.
    expectUnauthorized(await request(loopback.app, "GET", "/api/conversations"));
  });
});

describe("scopes", () => {
  test("send: may send, may not read or touch the mock provider", async () => {
    expect((await request(t.app, "POST", "/api/messages/sms", { body: smsSend(), headers: bearer(sendOnly) })).status).toBe(202);
    const read = await request(t.app, "GET", "/api/conversations", { headers: bearer(sendOnly) });
    expect(read.status).toBe(403);
    expect(read.json).toMatchObject({ code: "forbidden", message: "this API key lacks the read scope" });
    expect((await request(t.app, "GET", "/api/provider/mock/config", { headers: bearer(sendOnly) })).status).toBe(403);
  });

  test("read: may read, may not send (and the refused send stores nothing)", async () => {
    expect((await request(t.app, "GET", "/api/conversations", { headers: bearer(readOnly) })).status).toBe(200);
    const before = await countRows(t.database, "messages");
    expect((await request(t.app, "POST", "/api/messages/sms", { body: smsSend(), headers: bearer(readOnly) })).status).toBe(403);
    expect(await countRows(t.database, "messages")).toBe(before);
    expect((await request(t.app, "PUT", "/api/provider/mock/config", { headers: bearer(readOnly), body: { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null } })).status).toBe(403);
  });

  test("admin: the mock provider's config, reports and inbound", async () => {
    expect((await request(t.app, "GET", "/api/provider/mock/config", { headers: bearer(all) })).status).toBe(200);
    expect((await request(t.app, "POST", "/api/provider/mock/reports", { headers: bearer(readOnly), body: { message_id: "1", status: "delivered" } })).status).toBe(403);
  });

  test("admin: deleting a conversation; read and send keys are refused and the conversation stays", async () => {
    const sent = await request(t.app, "POST", "/api/messages/sms", { body: smsSend(), headers: bearer(sendOnly) });
    const path = `/api/conversations/${sent.json.conversation_id}`;
    expectUnauthorized(await request(t.app, "DELETE", path));
    for (const key of [readOnly, sendOnly]) {
      const refused = await request(t.app, "DELETE", path, { headers: bearer(key) });
      expect(refused.status).toBe(403);
      expect(refused.json).toMatchObject({ code: "forbidden", message: "this API key lacks the admin scope" });
    }
    expect(await countRows(t.database, "conversations", "id = $1", [sent.json.conversation_id])).toBe(1);
    expect((await request(t.app, "DELETE", path, { headers: bearer(all) })).status).toBe(204);
    expect(await countRows(t.database, "conversations", "id = $1", [sent.json.conversation_id])).toBe(0);
  });
});

describe("idempotency is scoped to the API key", () => {
  test("the same Idempotency-Key from two keys stores two messages; each key replays only its own", async () => {
    const other = (await createApiKey(t.database.sql, { name: "other", scopes: ["send"] })).key;
    const key = `idem-${crypto.randomUUID()}`;
    const body = smsSend();
    const a = await request(t.app, "POST", "/api/messages/sms", { body, headers: { ...bearer(sendOnly), "idempotency-key": key } });
    const b = await request(t.app, "POST", "/api/messages/sms", { body, headers: { ...bearer(other), "idempotency-key": key } });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.headers.get("idempotent-replayed")).toBeNull();
    expect(b.json.id).not.toBe(a.json.id);
    const again = await request(t.app, "POST", "/api/messages/sms", { body, headers: { ...bearer(sendOnly), "idempotency-key": key } });
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.json.id).toBe(a.json.id);
  });
});

describe("failures are counted", () => {
  test("messaging_auth_failures_total by reason", async () => {
    await request(t.app, "GET", "/api/conversations");
    await request(t.app, "GET", "/api/conversations", { headers: bearer(generateApiKey().key) });
    await request(t.app, "GET", "/api/conversations", { headers: bearer(sendOnly) });
    const text = (await request(t.app, "GET", "/metrics", { headers: bearer(all) })).text;
    for (const reason of ["missing", "invalid", "scope"]) {
      expect(text).toMatch(new RegExp(`messaging_auth_failures_total\\{reason="${reason}"\\} [1-9]`));
    }
  });
});

describe("odd spellings of a protected path", () => {
  test.each(["//api/conversations", "/api//conversations", "/api/conversations/", "/%61pi/conversations", "/api/%63onversations", "/api/./conversations"])(
    "%s is never answered without a key",
    async (path) => {
      const res = await request(t.app, "GET", path);
      expect([401, 404]).toContain(res.status);
      const sent = await request(t.app, "POST", path.replace("conversations", "messages/sms"), { body: smsSend() });
      expect([401, 404, 405]).toContain(sent.status);
    },
  );
});

describe("auth-failure throttling", () => {
  test("after the limit of failures a client gets 429 with Retry-After, even with a correct key", async () => {
    const throttled = await buildTestApp({ database: t.database, config: { auth: "on", authFailureLimit: 3, authFailureWindowSecs: 60 } });
    for (let i = 0; i < 3; i++) expectUnauthorized(await request(throttled.app, "GET", "/api/conversations", { headers: bearer(generateApiKey().key) }));
    const blocked = await request(throttled.app, "GET", "/api/conversations", { headers: bearer(all) });
    expect(blocked.status).toBe(429);
    expect(blocked.json.code).toBe("rate_limited");
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
    // Successes do not count as failures: a fresh app (a fresh counter) lets the good key through.
    const fresh = await buildTestApp({ database: t.database, config: { auth: "on", authFailureLimit: 3, authFailureWindowSecs: 60 } });
    expect((await request(fresh.app, "GET", "/api/conversations", { headers: bearer(all) })).status).toBe(200);
  });
});
