import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServiceConfig as Config, ProviderConfig } from "../../src/providers/config.ts";
import { openPostgres } from "../../src/db/client.ts";
import { lockDataDir } from "../../src/db/data-dir-lock.ts";
import { migrateUp } from "../../src/db/migrate.ts";
import { type CheckResult, reportPasses, runChecks } from "../../src/diagnostics/check.ts";
import {
  allowlistEntryProblem,
  authCheck,
  egressAllowlistCheck,
  inboundWebhooksCheck,
  opsEndpointsCheck,
  providerWebhooksCheck,
  routesCheck,
  securityHeadersCheck,
  transportCheck,
} from "../../src/diagnostics/settings-checks.ts";
import { testConfig } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "msg-check-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const statusOf = (results: CheckResult[], check: string) => results.filter((r) => r.check === check).map((r) => r.status);
/** A configuration that points at no database, for the items that need none. */
const noDatabase = (overrides: Partial<Config> = {}) => testConfig({ dataDir: join(dir, "none"), ...overrides });

describe("insecure settings", () => {
  test.each([
    ["auth", authCheck, { auth: "off" }, "warn", "MESSAGING_AUTH=off"],
    ["auth", authCheck, { auth: "on" }, "ok", "need an API key"],
    ["inbound-webhooks", inboundWebhooksCheck, { auth: "off", webhookSecrets: [] }, "warn", "accept unsigned requests from anyone"],
    ["inbound-webhooks", inboundWebhooksCheck, { auth: "off", webhookSecrets: ["s3cret-value"] }, "ok", "need X-Messaging-Signature"],
    ["inbound-webhooks", inboundWebhooksCheck, { auth: "on", webhookSecrets: [] }, "ok", "closed except to API keys with the inbound scope"],
    ["inbound-webhooks", inboundWebhooksCheck, { auth: "on", webhookSecrets: ["s3cret-value"] }, "ok", "accept a valid X-Messaging-Signature or an API key with the inbound scope"],
    ["security-headers", securityHeadersCheck, { securityHeadersEnabled: false }, "warn", "lack the security headers"],
    ["public-url", transportCheck, { publicUrl: "http://api.example.com" }, "warn", "plain http"],
    ["hsts", transportCheck, { publicUrl: "https://api.example.com", hsts: false }, "warn", "downgraded"],
    ["hsts", transportCheck, { publicUrl: "https://api.example.com" }, "ok", "Strict-Transport-Security"],
    ["ops-endpoints", opsEndpointsCheck, { host: "0.0.0.0", opsAuth: "off", auth: "on" }, "warn", "MESSAGING_OPS_AUTH=off on a public bind"],
    ["ops-endpoints", opsEndpointsCheck, { host: "0.0.0.0", opsAuth: "auto", auth: "off" }, "warn", "MESSAGING_AUTH=off on a public bind"],
    ["ops-endpoints", opsEndpointsCheck, { host: "0.0.0.0", opsAuth: "auto", auth: "on" }, "ok", "need an API key"],
    ["ops-endpoints", opsEndpointsCheck, { host: "127.0.0.1", opsAuth: "off", auth: "off" }, "ok", "this machine only"],
    ["egress-allowlist", egressAllowlistCheck, { ssrfAllowlist: ["10.1.2.3"] }, "warn", "10.1.2.3 is a private address"],
    ["egress-allowlist", egressAllowlistCheck, { ssrfAllowlist: ["api.twilio.com", ".sendgrid.com"] }, "ok", "api.twilio.com, .sendgrid.com only"],
  ] as const)("%s: %p gives %s", (check, item, overrides, status, text) => {
    const results = item(noDatabase(overrides as Partial<Config>));
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ check, status, message: expect.stringContaining(text) });
  });

  test("HSTS is not judged without a public URL (a proxy in front may do TLS and HSTS)", () => {
    expect(transportCheck(noDatabase({ hsts: false }))).toEqual([]);
  });

  test.each([
    ["10.0.0.0/8", "is a range"],
    ["*", "looks like a wildcard"],
    ["*.example.com", "looks like a wildcard"],
    [".com", "whole top-level domain"],
    ["localhost", "names this machine"],
    ["127.0.0.1", "loopback address"],
    ["::1", "loopback address"],
    ["169.254.169.254", "link-local address"],
    ["fd00::1", "unique-local address"],
    ["100.64.0.1", "cgnat address"],
  ])("an allowlist entry %s is flagged (%s)", (entry, why) => {
    expect(allowlistEntryProblem(entry)).toContain(why);
  });

  test.each(["api.twilio.com", ".twilio.com", "8.8.8.8", "2606:4700::1111"])("an allowlist entry %s is not flagged", (entry) => {
    expect(allowlistEntryProblem(entry)).toBeUndefined();
  });
});

describe("providers and routes", () => {
  const mock = (name: string): ProviderConfig => ({ name, kind: "mock", channels: ["sms", "mms", "email"] });

  test("a configured provider that no route uses is a warning naming it", () => {
    const config = { ...noDatabase(), providers: [mock("main"), mock("spare")], deliveryRoutes: { sms: ["main"], mms: ["main"], email: ["main"] } };
    expect(routesCheck(config)).toEqual([{ check: "routes", status: "warn", message: "no route uses spare; routes: sms → main; mms → main; email → main" }]);
  });

  test("routes that use every provider are ok and listed", () => {
    const config = { ...noDatabase(), providers: [mock("a"), mock("b")], deliveryRoutes: { sms: ["a", "b"], mms: ["a"], email: ["b"] } };
    expect(routesCheck(config)).toEqual([{ check: "routes", status: "ok", message: "sms → a, b; mms → a; email → b" }]);
  });
});

describe("provider webhooks", () => {
  const twilio: ProviderConfig = { name: "tw", kind: "twilio", channels: ["sms", "mms"], accountSid: `AC${"0".repeat(32)}`, senders: [{ kind: "phone", number: "+15005550006" }] };
  const sendgrid: ProviderConfig = { name: "sg", kind: "sendgrid", channels: ["email"], senders: [{ kind: "email", address: "noreply@example.com" }] };

  test("a Twilio provider without a public URL, and a SendGrid one without a verification key, are warnings naming them", () => {
    const [result] = providerWebhooksCheck({ ...noDatabase(), providers: [twilio, sendgrid] });
    expect(result).toMatchObject({ check: "provider-webhooks", status: "warn" });
    expect(result!.message).toContain("no MESSAGING_PUBLIC_URL, so tw send no StatusCallback");
    expect(result!.message).toContain("sg has no event_verification_key");
  });

  test("with both, it is ok; without Twilio or SendGrid providers there is nothing to say", () => {
    const ready = { ...noDatabase({ publicUrl: "https://messaging.example.com" }), providers: [twilio, { ...sendgrid, eventVerificationKey: "MFkw…" }] };
    expect(statusOf(providerWebhooksCheck(ready), "provider-webhooks")).toEqual(["ok"]);
    expect(providerWebhooksCheck(noDatabase())).toEqual([]);
  });
});

describe("the report", () => {
  test("every item is reported, the configuration first", async () => {
    const results = await runChecks(noDatabase());
    expect(results[0]).toEqual({ check: "config", status: "ok", message: "configuration is valid" });
    for (const check of ["providers", "routes", "auth", "inbound-webhooks", "security-headers", "egress-allowlist", "ops-endpoints", "database"]) {
      expect(results.map((r) => r.check)).toContain(check);
    }
    for (const r of results) expect(Object.keys(r).sort()).toEqual(["check", "message", "status"]);
  });

  test("an item that throws is its own error; the items after it still run", async () => {
    const results = await runChecks(noDatabase(), {
      settingsChecks: [
        {
          check: "broken",
          run: () => {
            throw new Error("boom");
          },
        },
        { check: "auth", run: authCheck },
      ],
    });
    expect(results).toContainEqual({ check: "broken", status: "error", message: "the check itself failed: boom" });
    expect(statusOf(results, "auth")).toEqual(["warn"]);
  });

  test("warnings pass unless strict; an error never passes", () => {
    const ok: CheckResult = { check: "a", status: "ok", message: "" };
    const warn: CheckResult = { check: "b", status: "warn", message: "" };
    const error: CheckResult = { check: "c", status: "error", message: "" };
    expect(reportPasses([ok], true)).toBe(true);
    expect(reportPasses([ok, warn], false)).toBe(true);
    expect(reportPasses([ok, warn], true)).toBe(false);
    expect(reportPasses([ok, error], false)).toBe(false);
  });
});

describe("check against PostgreSQL", () => {
  let pg: TestDatabase;
  beforeAll(async () => {
    pg = await createTestDatabase();
  });
  afterAll(() => pg.drop());
  const config = () => testConfig({ databaseUrl: pg.url });
  /** Runs `work` on a connection of its own to the test database. */
  async function onDatabase(work: (sql: ReturnType<typeof openPostgres>["sql"], db: ReturnType<typeof openPostgres>["db"]) => Promise<unknown>) {
    const handle = openPostgres(pg.url, 1);
    try {
      await work(handle.sql, handle.db);
    } finally {
      await handle.close();
    }
  }

  test("pending migrations are an error that says to run `migrate up`", async () => {
    const results = await runChecks(config());
    expect(statusOf(results, "database")).toEqual(["ok"]);
    expect(results.find((r) => r.check === "migrations")).toMatchObject({ status: "error", message: expect.stringContaining("messaging migrate up") });
    expect(statusOf(results, "counters")).toEqual([]); // the tables may not exist yet: not read
    expect(reportPasses(results, false)).toBe(false);
  });

  test("once migrated, the database items pass", async () => {
    await onDatabase((_sql, db) => migrateUp(db));
    const results = await runChecks(config());
    expect(statusOf(results, "migrations")).toEqual(["ok"]);
    expect(statusOf(results, "counters")).toEqual(["ok"]);
    expect(results.filter((r) => r.status === "error")).toEqual([]);
  });

  test("a migration applied by a newer binary is a warning", async () => {
    await onDatabase((sql) => sql.query("INSERT INTO messaging_migrations (tag, checksum) VALUES ('9999_from_the_future', 'x')"));
    const results = await runChecks(config());
    expect(results).toContainEqual({ check: "migrations", status: "warn", message: expect.stringContaining("9999_from_the_future") });
    await onDatabase((sql) => sql.query("DELETE FROM messaging_migrations WHERE tag = '9999_from_the_future'"));
  });

  test("an applied migration edited since (checksum differs) is an error naming it", async () => {
    let first: { tag: string; checksum: string } | undefined;
    await onDatabase(async (sql) => {
      [first] = await sql.query<{ tag: string; checksum: string }>("SELECT tag, checksum FROM messaging_migrations ORDER BY tag LIMIT 1");
    });
    await onDatabase((sql) => sql.query("UPDATE messaging_migrations SET checksum = 'edited' WHERE tag = $1", [first!.tag]));
    try {
      const results = await runChecks(config());
      expect(results).toContainEqual({ check: "migrations", status: "error", message: expect.stringContaining(`edited since (checksum differs): ${first!.tag}`) });
    } finally {
      await onDatabase((sql) => sql.query("UPDATE messaging_migrations SET checksum = $2 WHERE tag = $1", [first!.tag, first!.checksum]));
    }
  });

  test("a database that does not answer is an error, and nothing that needs it is read", async () => {
    const results = await runChecks(testConfig({ databaseUrl: "postgres://postgres@127.0.0.1:1/none" }));
    expect(results).toContainEqual({ check: "database", status: "error", message: "cannot reach the database: connect ECONNREFUSED 127.0.0.1:1" });
    expect(statusOf(results, "migrations")).toEqual([]);
  });
});

describe("check on the embedded default", () => {
  test("a missing data directory is reported, not created", async () => {
    const dataDir = join(dir, "never-created");
    const results = await runChecks(testConfig({ dataDir }));
    expect(reportPasses(results, false)).toBe(true);
    expect(results.find((c) => c.check === "database")).toMatchObject({ status: "warn" });
    expect(existsSync(dataDir)).toBe(false);
  });

  test("a data directory held by a running serve is a warning pointing at /readyz, not a failure", async () => {
    const dataDir = join(dir, "held");
    // Hold the lock as a running serve would (a flock on a second open file conflicts even in one process).
    const unlock = lockDataDir(dataDir);
    try {
      const results = await runChecks(testConfig({ dataDir }));
      const database = results.find((c) => c.check === "database");
      expect(database?.status).toBe("warn");
      expect(database?.message).toContain(`in use by process ${process.pid}`);
      expect(database?.message).toContain("/readyz");
      expect(reportPasses(results, false)).toBe(true);
    } finally {
      unlock();
    }
  });
});
