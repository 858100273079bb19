/**
 * Nothing unauthenticated writes (SPEC §8): with auth on, /api/webhooks/sms|email take an API key with the
 * `inbound` scope or, when MESSAGING_WEBHOOK_SECRETS is set, a valid X-Messaging-Signature; neither is a 401 and
 * stores nothing, and a forged STOP opts no one out. The mock provider's writing routes need the admin scope. The
 * providers' own webhooks keep their own proof, and MESSAGING_AUTH=off keeps the older behaviour.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { migrations } from "../../drizzle/manifest.ts";
import { migrateUp } from "../../src/db/migrate.ts";
import { createApiKey, listApiKeys } from "../../src/security/api-keys.ts";
import { signWebhook } from "../../src/security/webhook-signature.ts";
import { buildTestApp, request, type TestApp } from "../helpers/app.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { hostileRequests } from "../helpers/hostile-requests.ts";
import { countRows, emailWebhook, phone, smsSend, smsWebhook, UNLIMITED } from "../helpers/messaging.ts";

const SECRET = "whsec-inbound-6a1f0c93e2d84b75";
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const signed = (body: unknown) => {
  const text = JSON.stringify(body);
  return { text, headers: { "content-type": "application/json", "x-messaging-signature": signWebhook(SECRET, new TextEncoder().encode(text), Math.floor(Date.now() / 1000)) } };
};

/** A STOP from `victim` to `ours`, as a forger would post it. */
const forgedStop = (victim: string, ours: string) => smsWebhook({ from: victim, to: ours, body: "STOP" });

describe.each([
  ["without webhook secrets", [] as string[]],
  ["with webhook secrets", [SECRET]],
])("auth on, %s", (_name, webhookSecrets) => {
  let t: TestApp;
  let inbound: string;
  let allScopes: string;
  let noInbound: string;
  beforeAll(async () => {
    t = await buildTestApp({ config: { ...UNLIMITED, auth: "on", webhookSecrets, authFailureLimit: 1_000_000 } });
    inbound = (await createApiKey(t.database.sql, { name: "bridge", scopes: ["inbound"] })).key;
    allScopes = (await createApiKey(t.database.sql, { name: "all", scopes: ["send", "read", "admin", "inbound"] })).key;
    noInbound = (await createApiKey(t.database.sql, { name: "old", scopes: ["send", "read", "admin"] })).key;
  });
  afterAll(() => t.close());

  test("a forged STOP, unsigned and keyless, is refused 401 and opts no one out", async () => {
    const victim = phone();
    const ours = phone();
    const messagesBefore = await countRows(t.database, "messages");
    const res = await request(t.app, "POST", "/api/webhooks/sms", { body: forgedStop(victim, ours) });
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ code: "unauthorized", request_id: expect.any(String) });
    expect(await countRows(t.database, "messages")).toBe(messagesBefore);
    expect(await countRows(t.database, "opt_outs", "to_addr = $1", [victim])).toBe(0);
    // An authenticated send to the number still goes out.
    const send = await request(t.app, "POST", "/api/messages/sms", { body: smsSend({ from: ours, to: victim }), headers: bearer(allScopes) });
    expect(send.status).toBe(202);
  });

  test("2,000 hostile requests without a key store nothing (the audit's no-key fuzz wrote 116 inbound messages)", async () => {
    const before = { messages: await countRows(t.database, "messages"), optOuts: await countRows(t.database, "opt_outs") };
    const cases = hostileRequests(20, 2000).filter((c) => c.raw === undefined);
    const statuses: Record<number, number> = {};
    for (const c of cases) {
      const headers = Object.fromEntries(Object.entries(c.headers).filter(([name]) => name.toLowerCase() !== "authorization"));
      const init: RequestInit = { method: c.method, headers };
      if (c.body !== undefined && c.method !== "GET" && c.method !== "HEAD") init.body = c.body;
      let status: number;
      try {
        status = (await t.app.handle(new Request(`http://localhost${c.path.startsWith("/") ? c.path : `/${c.path}`}`, init))).status;
      } catch {
        status = 0;
      }
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
    expect(statuses[202] ?? 0).toBe(0);
    expect(await countRows(t.database, "messages")).toBe(before.messages);
    expect(await countRows(t.database, "opt_outs")).toBe(before.optOuts);
  }, 60_000);

  test.each([
    ["/api/webhooks/sms", () => smsWebhook()],
    ["/api/webhooks/email", () => emailWebhook()],
    ["/api/webhooks/sms/", () => smsWebhook()],
  ])("%s: keyless and unsigned → 401, nothing stored", async (path, body) => {
    const before = await countRows(t.database, "messages");
    expect((await request(t.app, "POST", path, { body: body() })).status).toBe(401);
    expect(await countRows(t.database, "messages")).toBe(before);
  });

  test.each([
    ["/api/webhooks/sms", () => smsWebhook()],
    ["/api/webhooks/email", () => emailWebhook()],
  ])("%s: an API key with only the inbound scope stores the message (no signature needed)", async (path, body) => {
    const res = await request(t.app, "POST", path, { body: body(), headers: bearer(inbound) });
    expect(res.status).toBe(202);
    expect(await countRows(t.database, "messages", "id = $1", [res.json.id])).toBe(1);
  });

  test("a key that lacks the inbound scope gets 403, even one with send, read and admin", async () => {
    const res = await request(t.app, "POST", "/api/webhooks/sms", { body: smsWebhook(), headers: bearer(noInbound) });
    expect(res.status).toBe(403);
    expect(res.json.message).toContain("inbound");
  });

  test("the inbound scope opens nothing else", async () => {
    expect((await request(t.app, "POST", "/api/messages/sms", { body: smsSend(), headers: bearer(inbound) })).status).toBe(403);
    expect((await request(t.app, "GET", "/api/conversations", { headers: bearer(inbound) })).status).toBe(403);
    expect((await request(t.app, "POST", "/api/provider/mock/inbound", { body: { ...smsWebhook(), channel: "sms" }, headers: bearer(inbound) })).status).toBe(403);
  });

  test("a signature stands in for the key only when secrets are set", async () => {
    const victim = phone();
    const { text, headers } = signed(forgedStop(victim, phone()));
    const res = await request(t.app, "POST", "/api/webhooks/sms", { body: text, headers });
    if (webhookSecrets.length > 0) {
      expect(res.status).toBe(202);
      expect(await countRows(t.database, "opt_outs", "to_addr = $1", [victim])).toBe(1);
    } else {
      // Nothing to verify it with: the request is keyless.
      expect(res.status).toBe(401);
      expect(await countRows(t.database, "opt_outs", "to_addr = $1", [victim])).toBe(0);
    }
  });

  test("a bad signature without a key is 401 and stores nothing", async () => {
    const before = await countRows(t.database, "messages");
    const { text } = signed(smsWebhook());
    const headers = { "content-type": "application/json", "x-messaging-signature": `t=${Math.floor(Date.now() / 1000)},v1=${"0".repeat(64)}` };
    expect((await request(t.app, "POST", "/api/webhooks/sms", { body: text, headers })).status).toBe(401);
    expect(await countRows(t.database, "messages")).toBe(before);
  });

  test("a request with a key is judged by the key: a wrong key is 401 whatever signature it carries", async () => {
    const { text, headers } = signed(smsWebhook());
    const res = await request(t.app, "POST", "/api/webhooks/sms", { body: text, headers: { ...headers, authorization: "Bearer msg_aaaaaaaaaa_wrong" } });
    expect(res.status).toBe(401);
  });

  describe("the mock provider's writing routes need the admin scope", () => {
    const writes: [string, string, () => unknown][] = [
      ["POST", "/api/provider/mock/inbound", () => ({ ...smsWebhook(), channel: "sms" })],
      ["POST", "/api/provider/mock/reports", () => ({ message_id: "999999999", status: "delivered" })],
      ["PUT", "/api/provider/mock/config", () => ({ timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null })],
    ];
    test.each(writes)("%s %s: keyless 401, inbound-only 403", async (method, path, body) => {
      expect((await request(t.app, method, path, { body: body() })).status).toBe(401);
      expect((await request(t.app, method, path, { body: body(), headers: bearer(inbound) })).status).toBe(403);
    });
    test.each(writes)("%s %s: an admin key gets through auth", async (method, path, body) => {
      const init = { body: body(), headers: bearer(allScopes) } as { body: unknown; headers: Record<string, string> };
      if (path.endsWith("/inbound") && webhookSecrets.length > 0) {
        const s = signed(init.body);
        init.body = s.text;
        init.headers = { ...init.headers, ...s.headers };
      }
      const res = await request(t.app, method, path, init);
      // The report names no message (404): what matters is that the key got it past auth.
      expect([200, 202, 404]).toContain(res.status);
      if (res.status === 404) expect(res.json.code).toBe("not_found");
    });
  });

  test("the providers' own webhooks are not asked for a key (they verify their provider's signature)", async () => {
    const res = await request(t.app, "POST", "/api/webhooks/twilio/nobody/inbound", {
      body: "From=%2B12015550100&To=%2B12015550101&Body=STOP",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(res.status).not.toBe(401);
  });
});

describe("auth off (the older suite's setting)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ config: { ...UNLIMITED, auth: "off" } });
  });
  afterAll(() => t.close());

  test("webhooks take unsigned, keyless requests as before", async () => {
    expect((await request(t.app, "POST", "/api/webhooks/sms", { body: smsWebhook() })).status).toBe(202);
    expect((await request(t.app, "POST", "/api/webhooks/email", { body: emailWebhook() })).status).toBe(202);
  });
});

describe("migration 0015: keys made with every scope get inbound", () => {
  test("a send+read+admin key gains inbound, a narrower key does not", async () => {
    const pg = await createTestDatabase();
    const { openPostgres } = await import("../../src/db/client.ts");
    const database = openPostgres(pg.url, 2);
    try {
      const before = migrations.filter((m) => m.tag !== "0015_inbound_scope");
      await migrateUp(database.db, before);
      const all = await createApiKey(database.sql, { name: "initial", scopes: ["send", "read", "admin"] });
      const narrow = await createApiKey(database.sql, { name: "ci", scopes: ["send", "read"] });
      await migrateUp(database.db);
      const keys = new Map((await listApiKeys(database.sql)).map((k) => [k.id, k.scopes]));
      expect(keys.get(all.id)).toEqual(["send", "read", "admin", "inbound"]);
      expect(keys.get(narrow.id)).toEqual(["send", "read"]);
    } finally {
      await database.close();
      await pg.drop();
    }
  });
});
