/**
 * Where the master keys come from: the setting, a key file, or (embedded only) a key generated once into the data
 * directory with mode 0600; how unusable settings are refused in one line that never shows a key; and that `check`'s
 * view of the configuration hides them.
 */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../src/config/index.ts";
import { loadServiceConfig } from "../../src/providers/config.ts";
import { SETTINGS_CHECKS } from "../../src/diagnostics/settings-checks.ts";
import { masterKeyCheck } from "../../src/diagnostics/credentials.ts";
import { generateMasterKey } from "../../src/security/keyring.ts";
import { configuredMasterKeys, embeddedKeyFile, MasterKeyError, masterKeysOrGenerate } from "../../src/security/master-key-source.ts";

const root = mkdtempSync(join(tmpdir(), "msg-test-master-keys-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const dataDir = () => {
  const dir = join(root, `data-${++n}`);
  mkdirSync(dir);
  return dir;
};

test("embedded without a key: one is generated into the data directory with mode 0600, and read back the next time", () => {
  const dir = dataDir();
  expect(configuredMasterKeys({ dataDir: dir })).toBeNull();
  const first = masterKeysOrGenerate({ dataDir: dir })!;
  expect(first.generated).toBe(embeddedKeyFile(dir));
  expect(statSync(embeddedKeyFile(dir)).mode & 0o777).toBe(0o600);
  expect(first.keys).toHaveLength(1);
  expect(first.keys[0]!.id).toMatch(/^embedded-\d{8}$/);
  const again = masterKeysOrGenerate({ dataDir: dir })!;
  expect(again.generated).toBeUndefined();
  expect(again.origin).toBe(embeddedKeyFile(dir));
  expect(again.keys[0]!.key.export().equals(first.keys[0]!.key.export())).toBe(true);
});

test("PostgreSQL without a key: none is generated (other machines would not have it)", () => {
  const dir = dataDir();
  expect(masterKeysOrGenerate({ dataDir: dir, databaseUrl: "postgres://db/x" })).toBeNull();
  expect(() => statSync(embeddedKeyFile(dir))).toThrow();
});

test("MESSAGING_MASTER_KEYS wins over the data directory's file; MESSAGING_MASTER_KEYS_FILE is read as a key file", () => {
  const dir = dataDir();
  masterKeysOrGenerate({ dataDir: dir });
  const fromEnv = loadServiceConfig({ env: { MESSAGING_MASTER_KEYS: `${generateMasterKey("a")},${generateMasterKey("b")}`, MESSAGING_DATA_DIR: dir } });
  expect(configuredMasterKeys(fromEnv)!.keys.map((k) => k.id)).toEqual(["a", "b"]);
  const file = join(root, "keys.txt");
  writeFileSync(file, `# rotated in November\n${generateMasterKey("c")}\n${generateMasterKey("d")} # the old one\n`, { mode: 0o600 });
  const fromFile = loadServiceConfig({ env: { MESSAGING_MASTER_KEYS_FILE: file } });
  expect(configuredMasterKeys(fromFile)).toMatchObject({ origin: file });
  expect(configuredMasterKeys(fromFile)!.keys.map((k) => k.id)).toEqual(["c", "d"]);
});

test("unusable key settings are refused in one line naming the setting or file, never the key", () => {
  const key = generateMasterKey("k1");
  const short = `k1:${Buffer.alloc(16, 7).toString("base64")}`;
  expect(() => loadServiceConfig({ env: { MESSAGING_MASTER_KEYS: short } })).toThrow(
    new ConfigError('invalid setting MESSAGING_MASTER_KEYS=<redacted>: entry 1 (id "k1"): the key must be 32 bytes, got 16'),
  );
  expect(() => loadServiceConfig({ env: { MESSAGING_MASTER_KEYS: key, MESSAGING_MASTER_KEYS_FILE: "/x" } })).toThrow(
    "MESSAGING_MASTER_KEYS and MESSAGING_MASTER_KEYS_FILE are both set; keep one",
  );
  const missing = join(root, "nope.keys");
  expect(() => configuredMasterKeys({ dataDir: root, masterKeysFile: missing })).toThrow(new MasterKeyError(`MESSAGING_MASTER_KEYS_FILE ${missing}: cannot be read (ENOENT)`));
  const bad = join(root, "bad.keys");
  writeFileSync(bad, `${key}\nnot-a-key\n`);
  expect(() => configuredMasterKeys({ dataDir: root, masterKeysFile: bad })).toThrow(`MESSAGING_MASTER_KEYS_FILE ${bad}: line 2: expected id:base64key`);
  const dir = dataDir();
  writeFileSync(embeddedKeyFile(dir), "k1:tooshort\n");
  expect(() => masterKeysOrGenerate({ dataDir: dir })).toThrow(`${embeddedKeyFile(dir)}: line 1 (id "k1"): the key must be 32 bytes, got 6`);
  expect(readFileSync(embeddedKeyFile(dir), "utf8")).toBe("k1:tooshort\n"); // never overwritten
});

test("check's report names the master keys by id, never by value", () => {
  const key = generateMasterKey("k1");
  const report = SETTINGS_CHECKS.flatMap((item) => item.run(loadServiceConfig({ env: { MESSAGING_MASTER_KEYS: key } })));
  expect(report.find((r) => r.check === "master-key")).toMatchObject({ status: "ok", message: expect.stringContaining("(k1)") });
  expect(JSON.stringify(report)).not.toContain(key.slice(3));
});

test("check says where the master keys come from, and warns when there are none or their file is readable by others", () => {
  const dir = dataDir();
  expect(masterKeyCheck(loadServiceConfig({ env: { MESSAGING_DATA_DIR: dir } }))).toEqual([{
    check: "master-key",
    status: "warn",
    message: `no master key is configured: \`serve\` generates one in ${embeddedKeyFile(dir)}; back it up with the data directory`,
  }]);
  expect(masterKeyCheck(loadServiceConfig({ env: { DATABASE_URL: "postgres://db/x" } }))).toMatchObject([{ status: "warn", message: expect.stringMatching(/^no master key is configured \(MESSAGING_MASTER_KEYS or MESSAGING_MASTER_KEYS_FILE\)/) }]);
  masterKeysOrGenerate({ dataDir: dir });
  expect(masterKeyCheck(loadServiceConfig({ env: { MESSAGING_DATA_DIR: dir } }))).toMatchObject([{ status: "ok", message: expect.stringContaining(`1 master key(s) from ${embeddedKeyFile(dir)}`) }]);
  const open = join(root, "open.keys");
  writeFileSync(open, `${generateMasterKey("k1")}\n`, { mode: 0o644 });
  chmodSync(open, 0o644);
  expect(masterKeyCheck(loadServiceConfig({ env: { MESSAGING_MASTER_KEYS_FILE: open } }))).toMatchObject([{ status: "warn", message: expect.stringContaining(`${open} is readable by other users (chmod 600 it)`) }]);
  expect(masterKeyCheck(loadServiceConfig({ env: { MESSAGING_MASTER_KEYS_FILE: join(root, "absent") } }))).toMatchObject([{ status: "error", message: expect.stringContaining("cannot be read (ENOENT)") }]);
  expect(masterKeyCheck(loadServiceConfig({ env: { MESSAGING_MASTER_KEYS: `${generateMasterKey("a")},${generateMasterKey("b")}` } }))).toEqual([{
    check: "master-key",
    status: "ok",
    message: "2 master key(s) from MESSAGING_MASTER_KEYS (a, b); a encrypts",
  }]);
});
