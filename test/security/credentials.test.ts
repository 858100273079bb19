/**
 * The credential store on both databases `serve` runs on: what `creds` writes (set, rotate with an overlap,
 * re-encryption under a new master key in one transaction), what a CredentialStore serves from it (current,
 * verifying during and after an overlap), how a wrong or missing master key or a moved ciphertext is an error naming
 * the credential, how a second instance picks a change up by polling, and the readiness line `serve` refuses with.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { loadServiceConfig } from "../../src/providers/config.ts";
import type { ProviderConfig } from "../../src/providers/config.ts";
import { type DatabaseHandle, openPostgres } from "../../src/db/client.ts";
import { storedCredentialChecks } from "../../src/diagnostics/credentials.ts";
import { listCredentials, parseOverlap, reencryptAll, storeCredential } from "../../src/security/credential-admin.ts";
import { credentialsProblem } from "../../src/providers/readiness.ts";
import { CredentialStore } from "../../src/security/credentials.ts";
import { CredentialError, generateMasterKey, type MasterKey, parseMasterKeys } from "../../src/security/keyring.ts";
import { createEmbeddedTestDatabase, createMigratedTestDatabase } from "../helpers/database.ts";

const keysOf = (text: string): MasterKey[] => {
  const parsed = parseMasterKeys(text);
  if ("problem" in parsed) throw new Error(parsed.problem);
  return parsed.keys;
};
const OLD = generateMasterKey("old");
const NEW = generateMasterKey("new");
const old = keysOf(OLD);
const rotated = keysOf(`${NEW},${OLD}`);
const onlyNew = keysOf(NEW);
const TWILIO: ProviderConfig = { name: "tw", kind: "twilio", channels: ["sms", "mms"], accountSid: "AC1", senders: [{ kind: "phone", number: "+15550001111" }] };

describe.each(["postgres", "embedded"] as const)("credential store on %s", (kind) => {
  let database: DatabaseHandle;
  let dispose: () => Promise<void>;
  const stores: CredentialStore[] = [];
  const storeWith = async (keys: readonly MasterKey[], now?: () => number) => {
    const store = new CredentialStore(database.sql, keys, { pollMs: 200, ...(now ? { now } : {}) });
    stores.push(store);
    await store.load();
    return store;
  };
  let n = 0;
  /** A provider name of its own per test, so the tests share one database without seeing each other's rows. */
  const fresh = () => `p${++n}-${kind}`;

  beforeAll(async () => {
    if (kind === "postgres") {
      const pg = await createMigratedTestDatabase();
      database = openPostgres(pg.url, 4);
      dispose = async () => {
        await database.close();
        await pg.drop();
      };
    } else {
      const embedded = await createEmbeddedTestDatabase({ migrated: true });
      database = embedded.handle;
      dispose = embedded.remove;
    }
  }, 60_000);
  afterAll(async () => {
    for (const s of stores) s.stop();
    await dispose?.();
  });

  test("a set value is current and the only one verifying; a second set replaces it at once", async () => {
    const p = fresh();
    expect(await storeCredential(database.sql, old, { provider: p, name: "auth_token", value: "first" })).toEqual({ version: 1 });
    const store = await storeWith(old);
    expect(store.current(p, "auth_token")).toBe("first");
    expect(store.verifying(p, "auth_token")).toEqual(["first"]);
    expect(await store.refresh()).toBe(false); // an unchanged table is one aggregate, not a reload
    expect(await storeCredential(database.sql, old, { provider: p, name: "auth_token", value: "second" })).toEqual({ version: 2 });
    expect(await store.refresh()).toBe(true);
    expect(await store.refresh()).toBe(false);
    expect(store.current(p, "auth_token")).toBe("second");
    expect(store.verifying(p, "auth_token")).toEqual(["second"]);
    expect(store.current(p, "api_key_secret")).toBeUndefined();
    expect(store.verifying(p, "api_key_secret")).toEqual([]);
  });

  test("a rotation with an overlap: the new value sends, both verify until the overlap ends, then only the new", async () => {
    const p = fresh();
    let clock = Date.now();
    await storeCredential(database.sql, old, { provider: p, name: "auth_token", value: "v1" });
    const rotation = await storeCredential(database.sql, old, { provider: p, name: "auth_token", value: "v2", overlapMs: 60_000 });
    expect(rotation.version).toBe(2);
    const store = await storeWith(old, () => clock);
    expect(store.current(p, "auth_token")).toBe("v2");
    expect(store.verifying(p, "auth_token")).toEqual(["v2", "v1"]);
    clock = rotation.previousVerifiesUntil!.getTime() + 1;
    expect(store.verifying(p, "auth_token")).toEqual(["v2"]);
    const [listed] = (await listCredentials(database.sql)).filter((c) => c.provider === p);
    expect(listed!.versions.map((v) => [v.version, v.keyId, v.verifyUntil?.getTime() ?? null])).toEqual([
      [2, "old", null],
      [1, "old", rotation.previousVerifiesUntil!.getTime()],
    ]);
  });

  test("a rotation with overlap 0 and the rotation after an ended overlap leave only the current version", async () => {
    const p = fresh();
    await storeCredential(database.sql, old, { provider: p, name: "api_key", value: "a" });
    await storeCredential(database.sql, old, { provider: p, name: "api_key", value: "b", overlapMs: 0 });
    await storeCredential(database.sql, old, { provider: p, name: "api_key", value: "c", overlapMs: 0 });
    const [row] = await database.sql.query<{ versions: number[] }>(
      "SELECT array_agg(version ORDER BY version) AS versions FROM provider_credentials WHERE provider = $1",
      [p],
    );
    expect(row!.versions).toEqual([3]);
    expect((await storeWith(old)).verifying(p, "api_key")).toEqual(["c"]);
  });

  test("a store with the wrong master key throws a CredentialError naming the credential, never an empty value", async () => {
    const p = fresh();
    await storeCredential(database.sql, old, { provider: p, name: "password", value: "pw" });
    const wrong = await storeWith(keysOf(generateMasterKey("old")));
    expect(() => wrong.current(p, "password")).toThrow(new RegExp(`^credential ${p}/password v1: authentication failed`));
    expect(() => wrong.verifying(p, "password")).toThrow(CredentialError);
    const unknown = await storeWith(onlyNew);
    expect(() => unknown.current(p, "password")).toThrow(`credential ${p}/password v1: unknown master key id "old"`);
    const none = await storeWith([]);
    expect(() => none.current(p, "password")).toThrow(`credential ${p}/password v1: no master key is configured to decrypt it`);
    expect(none.unreadable().map((e) => e.message)).toContain(`credential ${p}/password v1: no master key is configured to decrypt it`);
  });

  test("a ciphertext copied into another credential's row does not decrypt there", async () => {
    const p = fresh();
    await storeCredential(database.sql, old, { provider: p, name: "auth_token", value: "token" });
    await storeCredential(database.sql, old, { provider: p, name: "api_key_secret", value: "other" });
    await database.sql.query(
      `UPDATE provider_credentials SET envelope = (SELECT envelope FROM provider_credentials WHERE provider = $1 AND name = 'auth_token')
        WHERE provider = $1 AND name = 'api_key_secret'`,
      [p],
    );
    const store = await storeWith(old);
    expect(store.current(p, "auth_token")).toBe("token");
    expect(() => store.current(p, "api_key_secret")).toThrow(`credential ${p}/api_key_secret v1: authentication failed`);
    await database.sql.query("DELETE FROM provider_credentials WHERE provider = $1", [p]);
  });

  test("a second instance picks up a change within seconds by polling, without a restart", async () => {
    const p = fresh();
    await storeCredential(database.sql, old, { provider: p, name: "auth_token", value: "before" });
    const running = await storeWith(old);
    running.start();
    expect(running.current(p, "auth_token")).toBe("before");
    await storeCredential(database.sql, old, { provider: p, name: "auth_token", value: "after", overlapMs: 3_600_000 });
    const deadline = Date.now() + 10_000;
    while (running.current(p, "auth_token") !== "after" && Date.now() < deadline) await Bun.sleep(50);
    expect(running.current(p, "auth_token")).toBe("after");
    expect(running.verifying(p, "auth_token")).toEqual(["after", "before"]);
  });

  test("re-encryption moves every version under the first key in one go; the old key can then be dropped", async () => {
    const p = fresh();
    await database.sql.query("DELETE FROM provider_credentials");
    await storeCredential(database.sql, old, { provider: p, name: "auth_token", value: "t1" });
    await storeCredential(database.sql, old, { provider: p, name: "auth_token", value: "t2", overlapMs: 3_600_000 });
    const before = await database.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM provider_credentials");
    const result = await reencryptAll(database.sql, rotated);
    expect(result).toEqual({ total: 2, moved: 2 });
    expect(before[0]!.n).toBe(2);
    const store = await storeWith(onlyNew);
    expect(store.current(p, "auth_token")).toBe("t2");
    expect(store.verifying(p, "auth_token")).toEqual(["t2", "t1"]);
    expect(await reencryptAll(database.sql, onlyNew)).toEqual({ total: result.total, moved: 0 });
    expect((await listCredentials(database.sql)).flatMap((c) => c.versions.map((v) => v.keyId))).not.toContain("old");
  });

  test("re-encryption with a version that does not decrypt changes nothing and names it", async () => {
    const p = fresh();
    const stray = keysOf(generateMasterKey("stray"));
    await storeCredential(database.sql, stray, { provider: p, name: "auth_token", value: "x" });
    const keyIds = async () => (await database.sql.query<{ key_id: string }>("SELECT key_id FROM provider_credentials ORDER BY provider, name, version")).map((r) => r.key_id);
    const before = await keyIds();
    const third = keysOf(`${generateMasterKey("third")},${NEW}`);
    await expect(reencryptAll(database.sql, third)).rejects.toThrow(`credential ${p}/auth_token v1: unknown master key id "stray"`);
    expect(await keyIds()).toEqual(before);
    await database.sql.query("DELETE FROM provider_credentials WHERE provider = $1", [p]);
  });

  test("readiness: one line naming the provider, the credential and the command, or the decryption failure", async () => {
    const p = fresh();
    const provider = { ...TWILIO, name: p };
    const store = await storeWith(onlyNew);
    expect(credentialsProblem([provider], store, false)).toBe(
      `provider ${p} (twilio) needs credential auth_token, but no master key is configured to store or read it (set MESSAGING_MASTER_KEYS or MESSAGING_MASTER_KEYS_FILE)`,
    );
    expect(credentialsProblem([provider], store, true)).toBe(
      `provider ${p} (twilio): credential auth_token is not stored (run \`messaging creds set ${p} auth_token --value-file FILE\`)`,
    );
    await storeCredential(database.sql, onlyNew, { provider: p, name: "auth_token", value: "t" });
    await store.load();
    expect(credentialsProblem([provider], store, true)).toBeUndefined();
    const wrong = await storeWith(keysOf(generateMasterKey("new")));
    expect(credentialsProblem([provider], wrong, true)).toBe(`provider ${p} (twilio): credential ${p}/auth_token v1: authentication failed (wrong key, or moved/altered)`);
  });

  test("check: stored credentials that do not decrypt are an error naming them; with the right key, ok", async () => {
    const p = fresh();
    await database.sql.query("DELETE FROM provider_credentials");
    await storeCredential(database.sql, onlyNew, { provider: p, name: "api_key", value: "SG.x" });
    const base = loadServiceConfig({ env: { MESSAGING_MASTER_KEYS: NEW } });
    const context = (config: typeof base) => ({ config, database, migrations: [], repairCounters: false });
    const good = await storedCredentialChecks(context(base));
    expect(good).toEqual([{ check: "credentials", status: "ok", message: expect.stringContaining("all decrypt with the configured master key") }]);
    const wrong = await storedCredentialChecks(context(loadServiceConfig({ env: { MESSAGING_MASTER_KEYS: generateMasterKey("new") } })));
    expect(wrong[0]).toMatchObject({ status: "error", message: expect.stringContaining(`credential ${p}/api_key v1: authentication failed`) });
    const older = await storedCredentialChecks(context(loadServiceConfig({ env: { MESSAGING_MASTER_KEYS: `${generateMasterKey("newer")},${NEW}` } })));
    expect(older[0]).toMatchObject({ status: "warn", message: expect.stringContaining("run `messaging creds rotate`") });
  });

  test("check: a Twilio provider that sends with an API key but has no auth_token is warned about (its webhooks cannot verify)", async () => {
    const p = fresh();
    const withKey: ProviderConfig = { ...TWILIO, kind: "twilio", accountSid: "AC1", name: p, apiKeySid: "SK1" };
    await storeCredential(database.sql, onlyNew, { provider: p, name: "api_key_secret", value: "key-secret" });
    const config = { ...loadServiceConfig({ env: { MESSAGING_MASTER_KEYS: NEW } }), providers: [withKey] };
    const report = await storedCredentialChecks({ config, database, migrations: [], repairCounters: false });
    expect(report.find((r) => r.check === "provider-credentials")).toMatchObject({
      status: "warn",
      message: expect.stringContaining(`${p} send with an API key but have no auth_token stored`),
    });
    await storeCredential(database.sql, onlyNew, { provider: p, name: "auth_token", value: "token" });
    const fixed = await storedCredentialChecks({ config, database, migrations: [], repairCounters: false });
    expect(fixed.find((r) => r.check === "provider-credentials")).toMatchObject({ status: "ok" });
  });
});

test("overlaps read as seconds, minutes, hours or days, 0 for none, at most a year", () => {
  expect([parseOverlap("24h"), parseOverlap("30m"), parseOverlap("90s"), parseOverlap("7d"), parseOverlap("0")]).toEqual([86_400_000, 1_800_000, 90_000, 604_800_000, 0]);
  expect([parseOverlap("12"), parseOverlap("1w"), parseOverlap("-1h"), parseOverlap("366d"), parseOverlap("")]).toEqual([null, null, null, null, null]);
});
