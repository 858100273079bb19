// `messaging check` through the compiled binary: its lines, its JSON and its exit codes, on a fresh PostgreSQL
// database (unmigrated, then migrated), with the service's defaults and with every warning cleared.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateMasterKey } from "../../src/security/keyring.ts";
import { ensureBinary, runBinary } from "../helpers/binary.ts";
import { configFiles } from "../helpers/config-files.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

const files = configFiles("msg-test-check-");
let pg: TestDatabase;
beforeAll(async () => {
  await ensureBinary();
  pg = await createTestDatabase();
}, 180_000);
afterAll(async () => {
  await pg.drop();
  files.remove();
});

interface Result {
  check: string;
  status: string;
  message: string;
}

const check = (args: string[], env: Record<string, string> = {}) =>
  runBinary(["check", ...args], { env: { DATABASE_URL: pg.url, ...env } });

/** Settings that clear every warning: a provider on every route, signed webhooks, a loopback bind. */
const MASTER_KEY = generateMasterKey("k1");

function cleanEnv(): Record<string, string> {
  const path = files.write("json", { providers: [{ name: "main", kind: "mock" }], routes: { sms: ["main"], mms: ["main"], email: ["main"] } });
  return { MESSAGING_CONFIG: path, MESSAGING_WEBHOOK_SECRETS: "a-webhook-secret-of-some-length", HOST: "127.0.0.1", MESSAGING_MASTER_KEYS: MASTER_KEY };
}

describe("on an unmigrated database", () => {
  test("--json is a list of {check, status, message}, and the pending migrations fail it (exit 1)", async () => {
    const r = await check(["--json"]);
    expect(r.exitCode).toBe(1);
    const results = JSON.parse(r.stdout) as Result[];
    expect(Array.isArray(results)).toBe(true);
    for (const result of results) {
      expect(Object.keys(result).sort()).toEqual(["check", "message", "status"]);
      expect(["ok", "warn", "error"]).toContain(result.status);
    }
    expect(results).toContainEqual({ check: "migrations", status: "error", message: expect.stringContaining("messaging migrate up") });
  });

  test("the human report marks the error with ✗ and says the check failed", async () => {
    const r = await check([]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/^✗ migrations: \d+ pending: /m);
    expect(r.stdout).toMatch(/^✓ database: PostgreSQL at /m);
    expect(r.stdout.trim().split("\n").at(-1)).toMatch(/^check failed: 1 error\(s\), \d+ warning\(s\)$/);
  });
});

describe("on a migrated database", () => {
  beforeAll(async () => {
    const r = await runBinary(["migrate", "up"], { env: { DATABASE_URL: pg.url } });
    expect(r.exitCode).toBe(0);
  });

  test("with the defaults, warnings (⚠) pass (exit 0) but fail with --strict (exit 1)", async () => {
    const r = await check([]);
    expect(r.stdout).toMatch(/^⚠ providers: no providers are configured/m);
    expect(r.stdout).toMatch(/^✓ inbound-webhooks: \/api\/webhooks\/sms and \/api\/webhooks\/email are closed except to API keys with the inbound scope/m);
    expect(r.stdout).toMatch(/^✓ migrations: all \d+ migration\(s\) applied, none edited$/m);
    expect(r.stdout).not.toContain("✗");
    expect(r.exitCode).toBe(0);
    const strict = await check(["--strict"]);
    expect(strict.exitCode).toBe(1);
    expect(strict.stdout.trim().split("\n").at(-1)).toMatch(/^check failed: 0 error\(s\), \d+ warning\(s\) \(--strict\)$/);
  });

  test("each insecure setting is a warning in --json", async () => {
    const r = await check(["--json"], {
      MESSAGING_AUTH: "off",
      MESSAGING_OPS_AUTH: "off",
      HOST: "0.0.0.0",
      SECURITY_HEADERS_ENABLED: "false",
      MESSAGING_PUBLIC_URL: "https://messaging.example.com",
      MESSAGING_HSTS: "false",
      SSRF_ALLOWLIST: "api.twilio.com,10.0.0.7",
    });
    expect(r.exitCode).toBe(0);
    const warned = (JSON.parse(r.stdout) as Result[]).filter((x) => x.status === "warn").map((x) => x.check);
    for (const name of ["auth", "ops-endpoints", "security-headers", "hsts", "egress-allowlist", "inbound-webhooks", "providers"]) {
      expect(warned).toContain(name);
    }
  });

  test("with every warning cleared, --strict passes (exit 0) and every line is ✓", async () => {
    const r = await check(["--strict"], cleanEnv());
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines.at(-1)).toBe("check passed: 0 error(s), 0 warning(s)");
    for (const line of lines.slice(0, -1)) expect(line).toMatch(/^✓ /);
  });

  test("an edited migration is an error even with no other finding", async () => {
    const psql = (sql: string) => Bun.spawnSync(["psql", pg.url, "-qAtc", sql]);
    const tag = psql("SELECT tag FROM messaging_migrations ORDER BY tag LIMIT 1").stdout.toString().trim();
    const original = psql(`SELECT checksum FROM messaging_migrations WHERE tag = '${tag}'`).stdout.toString().trim();
    psql(`UPDATE messaging_migrations SET checksum = 'edited' WHERE tag = '${tag}'`);
    try {
      const r = await check(["--json"], cleanEnv());
      expect(r.exitCode).toBe(1);
      expect(JSON.parse(r.stdout)).toContainEqual({ check: "migrations", status: "error", message: expect.stringContaining(tag) });
    } finally {
      psql(`UPDATE messaging_migrations SET checksum = '${original}' WHERE tag = '${tag}'`);
    }
  });
});

test("an invalid configuration is one ✗ entry in --json and exit 2", async () => {
  const r = await check(["--json"], { PORT: "abc" });
  expect(r.exitCode).toBe(2);
  expect(JSON.parse(r.stdout)).toEqual([{ check: "config", status: "error", message: expect.stringContaining("PORT") }]);
});

test("a database that does not answer is an error (exit 1)", async () => {
  const r = await runBinary(["check", "--json"], { env: { DATABASE_URL: "postgres://postgres@127.0.0.1:1/none" } });
  expect(r.exitCode).toBe(1);
  expect(JSON.parse(r.stdout)).toContainEqual({ check: "database", status: "error", message: expect.stringContaining("ECONNREFUSED") });
});
