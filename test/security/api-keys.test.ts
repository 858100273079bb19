/**
 * API keys as stored and verified (SPEC §8): format, hashing, lookup by prefix, expiry and revocation, the
 * verification cache, and `last_used_at` written at most once a minute — on PostgreSQL and the embedded database.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { DatabaseHandle } from "../../src/db/client.ts";
import {
  ApiKeyVerifier,
  createApiKey,
  createFirstApiKey,
  generateApiKey,
  hashSecret,
  listApiKeys,
  parseApiKey,
  parseDuration,
  revokeApiKey,
} from "../../src/security/api-keys.ts";
import { openPostgres } from "../../src/db/client.ts";
import { createEmbeddedTestDatabase, createMigratedTestDatabase } from "../helpers/database.ts";

describe("key format", () => {
  test("a new key is msg_<10 base32>_<43 base64url>, and 1000 keys are all different", () => {
    const keys = Array.from({ length: 1000 }, () => generateApiKey());
    for (const k of keys) {
      expect(k.key).toMatch(/^msg_[a-z2-7]{10}_[A-Za-z0-9_-]{43}$/);
      expect(parseApiKey(k.key)).toEqual({ prefix: k.prefix, secret: k.secret });
    }
    expect(new Set(keys.map((k) => k.secret)).size).toBe(1000);
    expect(new Set(keys.map((k) => k.prefix)).size).toBe(1000);
  });

  test.each([
    ["empty", ""],
    ["no prefix", "msg__abc"],
    ["wrong start", `key_abcdefghij_${"a".repeat(43)}`],
    ["short secret", `msg_abcdefghij_${"a".repeat(42)}`],
    ["long secret", `msg_abcdefghij_${"a".repeat(44)}`],
    ["upper-case prefix", `msg_ABCDEFGHIJ_${"a".repeat(43)}`],
    ["a NUL", `msg_abcdefghij_${"a".repeat(42)}\u0000`],
    ["a newline", `msg_abcdefghij_${"a".repeat(43)}\n`],
    ["non-ASCII", `msg_abcdefghij_${"é".repeat(43)}`],
  ])("%s is not a key", (_name, text) => {
    expect(parseApiKey(text)).toBeNull();
  });

  test("the secret is stored as its SHA-256, never as itself", () => {
    expect(hashSecret("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  test.each([
    ["90d", 90 * 86_400_000],
    ["12h", 12 * 3_600_000],
    ["30m", 30 * 60_000],
    ["7", 7 * 86_400_000],
  ])("--expires %s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(["0d", "-1d", "1y", "d", "1.5d", ""])("--expires %s is refused", (text) => {
    expect(parseDuration(text)).toBeNull();
  });
});

for (const kind of ["postgres", "embedded"] as const) {
  describe(`the key store on ${kind}`, () => {
    let handle: DatabaseHandle;
    let dispose: () => Promise<void>;
    beforeAll(async () => {
      if (kind === "postgres") {
        const pg = await createMigratedTestDatabase();
        handle = openPostgres(pg.url, 4);
        dispose = async () => {
          await handle.close();
          await pg.drop();
        };
      } else {
        const embedded = await createEmbeddedTestDatabase({ migrated: true });
        handle = embedded.handle;
        dispose = embedded.remove;
      }
    });
    afterAll(() => dispose());

    test("the first key is made once, with every scope; later calls make none", async () => {
      const first = await createFirstApiKey(handle.sql);
      expect(first?.scopes).toEqual(["send", "read", "admin", "inbound"]);
      expect(await createFirstApiKey(handle.sql)).toBeNull();
    });

    test("a created key verifies with its scopes; the store holds only the hash", async () => {
      const created = await createApiKey(handle.sql, { name: "ci", scopes: ["send"] });
      const verifier = new ApiKeyVerifier(handle.sql);
      const principal = await verifier.verify(created.key);
      expect(principal?.id).toBe(created.id);
      expect([...principal!.scopes]).toEqual(["send"]);
      const rows = await handle.sql.query<Record<string, unknown>>("SELECT * FROM api_keys WHERE id = $1::uuid", [created.id]);
      expect(JSON.stringify(rows)).not.toContain(parseApiKey(created.key)!.secret);
      expect(rows[0]!.secret_hash).toBe(hashSecret(parseApiKey(created.key)!.secret));
    });

    test("a wrong secret under a real prefix, an unknown prefix and garbage all fail alike", async () => {
      const created = await createApiKey(handle.sql, { name: "x", scopes: ["read"] });
      const verifier = new ApiKeyVerifier(handle.sql);
      const wrongSecret = `msg_${created.prefix}_${generateApiKey().secret}`;
      expect(await verifier.verify(wrongSecret)).toBeNull();
      expect(await verifier.verify(generateApiKey().key)).toBeNull();
      expect(await verifier.verify("Bearer nonsense")).toBeNull();
    });

    test("an expired key fails", async () => {
      const created = await createApiKey(handle.sql, { name: "old", scopes: ["read"], expiresAt: new Date(Date.now() - 1000) });
      expect(await new ApiKeyVerifier(handle.sql).verify(created.key)).toBeNull();
    });

    test("a revoked key fails once the cache runs out, and at once for a verifier that had not seen it", async () => {
      let now = 1_000_000;
      const created = await createApiKey(handle.sql, { name: "to-revoke", scopes: ["read"] });
      const verifier = new ApiKeyVerifier(handle.sql, { cacheMs: 5000, now: () => now });
      expect(await verifier.verify(created.key)).not.toBeNull();
      expect((await revokeApiKey(handle.sql, created.prefix))?.revokedAt).toBeInstanceOf(Date);
      expect(await new ApiKeyVerifier(handle.sql).verify(created.key)).toBeNull();
      now += 4000;
      expect(await verifier.verify(created.key)).not.toBeNull();
      now += 1001;
      expect(await verifier.verify(created.key)).toBeNull();
    });

    test("revoking by id works; an unknown id or prefix revokes nothing", async () => {
      const created = await createApiKey(handle.sql, { name: "by-id", scopes: ["read"] });
      expect((await revokeApiKey(handle.sql, created.id))?.id).toBe(created.id);
      expect(await revokeApiKey(handle.sql, "00000000-0000-0000-0000-000000000000")).toBeNull();
      expect(await revokeApiKey(handle.sql, "zzzzzzzzzz")).toBeNull();
    });

    test("last_used_at is written on first use and then at most once a minute, however many requests", async () => {
      let now = 5_000_000;
      const created = await createApiKey(handle.sql, { name: "busy", scopes: ["read"] });
      const writes: string[] = [];
      const counting = { ...handle.sql, query: <T>(text: string, params?: unknown[]) => {
        if (text.startsWith("UPDATE api_keys SET last_used_at")) writes.push(text);
        return handle.sql.query<T>(text, params);
      } };
      const verifier = new ApiKeyVerifier(counting, { now: () => now });
      for (let i = 0; i < 100; i++) await verifier.verify(created.key);
      expect(writes).toHaveLength(1);
      now += 59_000;
      await verifier.verify(created.key);
      expect(writes).toHaveLength(1);
      now += 2000;
      await verifier.verify(created.key);
      expect(writes).toHaveLength(2);
      await Bun.sleep(50);
      const [listed] = (await listApiKeys(handle.sql)).filter((k) => k.id === created.id);
      expect(listed!.lastUsedAt).toBeInstanceOf(Date);
    });

    test("concurrent requests with one new key share one lookup", async () => {
      const created = await createApiKey(handle.sql, { name: "burst", scopes: ["read"] });
      let lookups = 0;
      const counting = { ...handle.sql, query: <T>(text: string, params?: unknown[]) => {
        if (text.includes("FROM api_keys WHERE prefix")) lookups += 1;
        return handle.sql.query<T>(text, params);
      } };
      const verifier = new ApiKeyVerifier(counting);
      const results = await Promise.all(Array.from({ length: 50 }, () => verifier.verify(created.key)));
      expect(results.every((r) => r?.id === created.id)).toBe(true);
      expect(lookups).toBe(1);
    });
  });
}
