/**
 * Storage faults answer honestly (db/storage-health.ts): which errors mean "out of space", and, through the app on
 * a real PostgreSQL that answers SQLSTATE class 53 (raised by a trigger and an event trigger, as the server raises
 * disk_full), a 503 with Retry-After instead of a 500, /readyz 503 "storage full", the metrics, one log line per
 * episode, and recovery without a restart once the server writes again. The embedded database on a real full file
 * system is test/reliability/storage-full.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { isStorageFull } from "../../src/db/storage-health.ts";
import { buildTestApp, captureLogger, request, type TestApp } from "../helpers/app.ts";
import { metricValue, smsSend, UNLIMITED } from "../helpers/messaging.ts";

const pgError = (code: string, message = "boom") => Object.assign(new Error(message), { code, severity: "ERROR" });

describe("isStorageFull", () => {
  test.each([
    ["53100 disk_full", () => pgError("53100", 'could not extend file "base/5/16460": No space left on device'), true],
    ["53200 out_of_memory", () => pgError("53200", "out of memory"), true],
    ["53000 insufficient_resources", () => pgError("53000"), true],
    ["53400 configuration_limit_exceeded", () => pgError("53400"), true],
    ["ENOSPC from the file system", () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }), true],
    ["EDQUOT from the file system", () => Object.assign(new Error("quota"), { code: "EDQUOT" }), true],
    ["'could not extend file' under another code", () => pgError("XX000", 'could not extend file "base/1/2": wrote only 4096 of 8192 bytes'), true],
    ["drizzle's wrapper around a 53100", () => new Error("Failed query: insert …", { cause: pgError("53100") }), true],
    ["53300 too_many_connections (an availability problem, not storage)", () => pgError("53300", "sorry, too many clients already"), false],
    ["23505 unique_violation", () => pgError("23505", "duplicate key"), false],
    ["a lost connection", () => Object.assign(new Error("write ECONNRESET"), { code: "ECONNRESET" }), false],
  ] as const)("%s → %p", (_name, error, expected) => {
    expect(isStorageFull(error())).toBe(expected);
  });
});

describe.each(["53100", "53200"])("PostgreSQL answering SQLSTATE %s", (sqlstate) => {
  let t: TestApp;
  let logs: ReturnType<typeof captureLogger>;
  beforeAll(async () => {
    logs = captureLogger("info");
    t = await buildTestApp({ config: UNLIMITED, logger: logs.logger });
  });
  afterAll(() => t.close());

  /** Makes every new row of `messages` and every CREATE fail as a full disk would. */
  async function fillDisk(): Promise<void> {
    await t.database.sql.query(`CREATE OR REPLACE FUNCTION storage_full() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = '${sqlstate}'; END $$`);
    await t.database.sql.query("CREATE TRIGGER storage_full BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION storage_full()");
    await t.database.sql.query(`CREATE OR REPLACE FUNCTION storage_full_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'could not extend file "base/1/3": No space left on device' USING ERRCODE = '${sqlstate}'; END $$`);
    await t.database.sql.query("CREATE EVENT TRIGGER storage_full_ddl ON ddl_command_start EXECUTE FUNCTION storage_full_ddl()");
  }

  async function freeDisk(): Promise<void> {
    await t.database.sql.query("DROP EVENT TRIGGER storage_full_ddl");
    await t.database.sql.query("DROP TRIGGER storage_full ON messages");
  }

  test("sends get 503 with Retry-After, /readyz says storage full, one warning per episode; all clear once space returns", async () => {
    expect((await request(t.app, "POST", "/api/messages/sms", { body: smsSend() })).status).toBe(202);
    await fillDisk();
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, () => request(t.app, "POST", "/api/messages/sms", { body: smsSend() })));
      for (const res of answers) {
        expect(res.status).toBe(503);
        expect(res.json).toMatchObject({ code: "service_unavailable", message: expect.stringContaining("out of storage space") });
        expect(res.headers.get("retry-after")).toBe("30");
      }
      const ready = await request(t.app, "GET", "/readyz");
      expect(ready.status).toBe(503);
      expect(ready.json.message).toBe("not ready: storage full");
      // A read still works: only writes need space.
      expect((await request(t.app, "GET", "/api/conversations")).status).toBe(200);
      const metrics = await t.metrics.registry.metrics();
      expect(metricValue(metrics, "messaging_storage_full")).toBe(1);
      expect(metricValue(metrics, "messaging_storage_full_episodes_total")).toBe(1);
      expect(metricValue(metrics, "messaging_storage_full_refusals_total")).toBe(20);
      // Still full a second later: the probe could not allocate.
      await Bun.sleep(1100);
      expect((await request(t.app, "GET", "/readyz")).status).toBe(503);
    } finally {
      await freeDisk();
    }
    const deadline = Date.now() + 3000;
    while ((await request(t.app, "GET", "/readyz")).status !== 200) {
      expect(Date.now()).toBeLessThan(deadline);
      await Bun.sleep(100);
    }
    expect((await request(t.app, "POST", "/api/messages/sms", { body: smsSend() })).status).toBe(202);
    const metrics = await t.metrics.registry.metrics();
    expect(metricValue(metrics, "messaging_storage_full")).toBe(0);

    const lines = logs.lines();
    expect(lines.filter((l) => String(l.msg).startsWith("the database is out of storage space"))).toHaveLength(1);
    expect(lines.filter((l) => String(l.msg).startsWith("the database has storage space again"))).toHaveLength(1);
    expect(lines.filter((l) => l.level === "error")).toEqual([]);
    expect(lines.filter((l) => l.msg === "request" && l.status === 500)).toEqual([]);
  }, 30_000);
});
