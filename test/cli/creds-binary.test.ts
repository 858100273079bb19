/**
 * `messaging creds` as an operator runs it, with the compiled binary: values from a file or stdin and never shown
 * again, names checked against the configured providers, a master-key rotation after which the old key can go, a
 * value rotation whose overlap ends, a wrong master key reported by name, and, on the embedded database, the
 * master key `serve` generates (mode 0600) and says it did without showing it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openPostgres } from "../../src/db/client.ts";
import { CredentialStore } from "../../src/security/credentials.ts";
import { generateMasterKey, parseMasterKeys } from "../../src/security/keyring.ts";
import { embeddedKeyFile } from "../../src/security/master-key-source.ts";
import { ensureBinary, runBinary, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate, createTestDatabase, type TestDatabase } from "../helpers/database.ts";

const dir = mkdtempSync(join(tmpdir(), "msg-test-creds-"));
const K1 = generateMasterKey("k1");
const K2 = generateMasterKey("k2");
const FROM_FILE = `file-value-${crypto.randomUUID()}`;
const FROM_STDIN = `stdin-value-${crypto.randomUUID()}`;
let pg: TestDatabase;
let configFile: string;

beforeAll(async () => {
  await ensureBinary();
  pg = await createTestDatabase();
  expect((await runBinary(["migrate", "up"], { env: { DATABASE_URL: pg.url } })).exitCode).toBe(0);
  configFile = join(dir, "messaging.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      providers: [
        { name: "tw", kind: "twilio", account_sid: "AC1", from: "+15550001111" },
        { name: "sg", kind: "sendgrid", from: "noreply@example.com" },
      ],
      routes: { sms: ["tw"], mms: ["tw"], email: ["sg"] },
    }),
  );
}, 180_000);
afterAll(async () => {
  await pg?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const creds = (args: string[], keys: string | undefined, stdin?: string) =>
  runBinary(["--config", configFile, "creds", ...args], {
    env: { DATABASE_URL: pg.url, ...(keys ? { MESSAGING_MASTER_KEYS: keys } : {}) },
    ...(stdin === undefined ? {} : { stdin: new TextEncoder().encode(stdin) }),
  });
const listJson = async (keys?: string) => {
  const listed = await creds(["list", "--json"], keys);
  expect(listed.exitCode).toBe(0);
  return JSON.parse(listed.stdout) as { provider: string; name: string; versions: { version: number; state: string; key_id: string; verify_until: string | null }[] }[];
};

describe("creds on PostgreSQL", () => {
  test("set from a file and from stdin; list shows versions, key ids and dates but never a value", async () => {
    const file = join(dir, "token");
    writeFileSync(file, `${FROM_FILE}\n`, { mode: 0o600 });
    const fromFile = await creds(["set", "tw", "auth_token", "--value-file", file], K1);
    expect(fromFile).toEqual({ exitCode: 0, stdout: "stored tw/auth_token v1 (master key k1)\n", stderr: "" });
    const fromStdin = await creds(["set", "sg", "api_key", "--value-file", "-"], K1, `${FROM_STDIN}\n`);
    expect(fromStdin).toEqual({ exitCode: 0, stdout: "stored sg/api_key v1 (master key k1)\n", stderr: "" });

    const human = await creds(["list"], undefined);
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toMatch(/^sg\/api_key {2}v1 {2}current {2}master key k1 {2}created \S+Z\ntw\/auth_token {2}v1 {2}current {2}master key k1 {2}created \S+Z\n$/);
    const json = await listJson();
    expect(json.map((c) => [c.provider, c.name, c.versions.map((v) => [v.version, v.state, v.key_id])])).toEqual([
      ["sg", "api_key", [[1, "current", "k1"]]],
      ["tw", "auth_token", [[1, "current", "k1"]]],
    ]);
    for (const output of [fromFile, fromStdin, human].flatMap((r) => [r.stdout, r.stderr]).concat(JSON.stringify(json))) {
      expect(output).not.toContain(FROM_FILE);
      expect(output).not.toContain(FROM_STDIN);
    }
    // What the service reads back is the value without its trailing newline.
    const database = openPostgres(pg.url, 1);
    try {
      const store = new CredentialStore(database.sql, keys(K1));
      await store.load();
      expect([store.current("tw", "auth_token"), store.current("sg", "api_key")]).toEqual([FROM_FILE, FROM_STDIN]);
    } finally {
      await database.close();
    }
  });

  test.each([
    ["an unknown name for a configured provider", ["set", "tw", "api_key", "--value-file", "-"], 'provider tw (twilio) has no credential "api_key"; its credentials are auth_token, api_key_secret'],
    ["an unknown name for any provider", ["set", "later", "token", "--value-file", "-"], '"token" is not a credential name; the names are auth_token, api_key_secret, api_key, parse_password, password'],
    ["a malformed provider name", ["set", "Tw!", "auth_token", "--value-file", "-"], '"Tw!" is not a provider name (lower-case letters, digits, - and _)'],
    ["an empty value", ["set", "tw", "auth_token", "--value-file", "-"], "--value-file -: the value is empty"],
    ["a rotation without a value", ["rotate", "tw", "auth_token"], "creds rotate PROVIDER NAME needs --value-file FILE (`-` reads stdin)"],
    ["a bad overlap", ["rotate", "tw", "auth_token", "--value-file", "-", "--overlap", "1w"], '--overlap takes a duration such as 24h, 30m, 90s or 0 (at most 365d); got "1w"'],
  ])("%s is a usage error (exit 2) and stores nothing", async (_what, args, message) => {
    const before = await listJson();
    const result = await creds(args, K1, "\n");
    expect(result).toEqual({ exitCode: 2, stdout: "", stderr: `messaging: ${message}\n` });
    expect(await listJson()).toEqual(before);
  });

  test("a value on the command line is refused: there is no such argument", async () => {
    const result = await creds(["set", "tw", "auth_token", "inline-secret"], K1);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).not.toContain("inline-secret");
    expect(await listJson()).toHaveLength(2);
  });

  test("without a master key on PostgreSQL, set is refused in one line and nothing is generated", async () => {
    const result = await creds(["set", "tw", "auth_token", "--value-file", "-"], undefined, "x");
    expect(result).toEqual({
      exitCode: 2,
      stdout: "",
      stderr: "messaging: no master key is configured: set MESSAGING_MASTER_KEYS or MESSAGING_MASTER_KEYS_FILE (the keys every instance uses)\n",
    });
  });

  test("rotate re-encrypts everything under the new first key; then the old key is removed and everything still reads", async () => {
    const moved = await creds(["rotate"], `${K2},${K1}`);
    expect(moved.exitCode).toBe(0);
    expect(moved.stdout).toBe("re-encrypted 2 of 2 credential version(s) under master key k2\n");
    expect((await listJson()).flatMap((c) => c.versions.map((v) => v.key_id))).toEqual(["k2", "k2"]);
    const check = await runBinary(["--config", configFile, "check", "--json"], { env: { DATABASE_URL: pg.url, MESSAGING_MASTER_KEYS: K2, SSRF_ALLOWLIST: "api.twilio.com,api.sendgrid.com" } });
    const report = JSON.parse(check.stdout) as { check: string; status: string; message: string }[];
    expect(report.filter((c) => c.check.includes("credentials"))).toEqual([
      { check: "credentials", status: "ok", message: "2 stored credential version(s), all decrypt with the configured master key" },
      { check: "provider-credentials", status: "ok", message: "every configured provider has the credentials it needs" },
    ]);
    expect(check.exitCode).toBe(0);
    expect((await creds(["rotate"], K2)).stdout).toBe("re-encrypted 0 of 2 credential version(s) under master key k2\n");
  });

  test("a wrong master key is an error naming the credential, in check and in rotate (which then changes nothing)", async () => {
    const wrong = generateMasterKey("k2");
    const check = await runBinary(["--config", configFile, "check", "--json"], { env: { DATABASE_URL: pg.url, MESSAGING_MASTER_KEYS: wrong, SSRF_ALLOWLIST: "api.twilio.com,api.sendgrid.com" } });
    expect(check.exitCode).toBe(1);
    const report = JSON.parse(check.stdout) as { check: string; status: string; message: string }[];
    expect(report.find((c) => c.check === "credentials")).toMatchObject({
      status: "error",
      message: expect.stringContaining("credential sg/api_key v1: authentication failed (wrong key, or moved/altered)"),
    });
    expect(report.find((c) => c.check === "provider-credentials")).toMatchObject({ status: "error", message: "provider tw (twilio): credential tw/auth_token v1: authentication failed (wrong key, or moved/altered)" });
    const rotate = await creds(["rotate"], `${generateMasterKey("k3")},${wrong}`);
    expect(rotate).toEqual({ exitCode: 1, stdout: "", stderr: "messaging: credential sg/api_key v1: authentication failed (wrong key, or moved/altered)\n" });
    expect((await listJson()).flatMap((c) => c.versions.map((v) => v.key_id))).toEqual(["k2", "k2"]);
    const serve = await runBinary(["--config", configFile, "serve"], { env: { DATABASE_URL: pg.url, MESSAGING_MASTER_KEYS: wrong, SSRF_ALLOWLIST: "api.twilio.com,api.sendgrid.com", PORT: "0" } });
    expect(serve).toMatchObject({ exitCode: 2, stderr: "messaging: provider tw (twilio): credential tw/auth_token v1: authentication failed (wrong key, or moved/altered)\n" });
  });

  // Waits out its 4 s overlap beside the embedded test below (a database and files of its own).
  test.concurrent("rotate PROVIDER NAME with an overlap: both values verify until it ends, then only the new one", async () => {
    const rotated = await creds(["rotate", "tw", "auth_token", "--value-file", "-", "--overlap", "4s"], K2, "second-token");
    expect(rotated.exitCode).toBe(0);
    expect(rotated.stdout).toMatch(/^stored tw\/auth_token v2 \(master key k2\); v1 verifies inbound signatures until \S+Z\n$/);
    const [, tw] = await listJson();
    expect(tw!.versions.map((v) => [v.version, v.state])).toEqual([[2, "current"], [1, "verifying"]]);
    const database = openPostgres(pg.url, 1);
    try {
      const store = new CredentialStore(database.sql, keys(K2));
      await store.load();
      expect(store.current("tw", "auth_token")).toBe("second-token");
      expect(store.verifying("tw", "auth_token")).toEqual(["second-token", FROM_FILE]);
      const deadline = Date.now() + 20_000;
      while (store.verifying("tw", "auth_token").length > 1 && Date.now() < deadline) await Bun.sleep(100);
      expect(store.verifying("tw", "auth_token")).toEqual(["second-token"]);
    } finally {
      await database.close();
    }
    const [, after] = await listJson();
    expect(after!.versions.map((v) => v.version)).toEqual([2]);
  }, 30_000);
});

describe("creds and serve on the embedded database", () => {
  test.concurrent("serve without a master key generates one (mode 0600), says so on stderr and in the log, never shows it; creds set uses it", async () => {
    const cwd = mkdtempSync(join(dir, "embedded-"));
    await copyEmbeddedTemplate(join(cwd, "messaging-data"));
    const serve = await startServe({ cwd });
    expect(await serve.stop()).toBe(0);
    const path = embeddedKeyFile("./messaging-data");
    expect(serve.stderr()).toContain(`messaging: no master key was configured, so one was generated in ${path} (mode 0600).`);
    const logged = serve.stdout().split("\n").filter(Boolean).map((line) => JSON.parse(line) as { msg: string; path?: string });
    expect(logged.find((l) => l.msg === "no master key was configured: generated one for the credential store")).toMatchObject({ path });
    const file = join(cwd, "messaging-data", "master.keys");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const material = readFileSync(file, "utf8").split("\n").find((l) => /^embedded-\d{8}:/.test(l))!.split(":")[1]!;
    expect(serve.stdout()).not.toContain(material);
    expect(serve.stderr()).not.toContain(material);

    const set = await runBinary(["creds", "set", "relay", "password", "--value-file", "-"], { cwd, stdin: new TextEncoder().encode("smtp-pw") });
    expect(set.exitCode).toBe(0);
    expect(set.stdout).toMatch(/^stored relay\/password v1 \(master key embedded-\d{8}\)\n$/);
    const again = await startServe({ cwd });
    expect(await again.stop()).toBe(0);
    expect(again.stderr()).not.toContain("generated");
    expect(again.stdout()).toContain('"versions":1,"unreadable":0');
  }, 90_000);
});

function keys(text: string) {
  const parsed = parseMasterKeys(text);
  if ("problem" in parsed) throw new Error(parsed.problem);
  return parsed.keys;
}
