/**
 * `messaging check` compares the counters with the rows and fails on drift; `--repair-counters` recomputes
 * them (the total's stripes and every message_count) and says what it changed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { reportPasses, runChecks } from "../../src/diagnostics/check.ts";
import { counterDrift, repairCounters } from "../../src/diagnostics/counters.ts";
import { buildTestApp, type TestApp, testConfig } from "../helpers/app.ts";
import { ensureBinary, runBinary } from "../helpers/binary.ts";
import { expectCountersExact } from "../helpers/counters.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { concurrently, post, smsSend, UNLIMITED } from "../helpers/messaging.ts";
import { openPostgres } from "../../src/db/client.ts";

let pg: TestDatabase;
let t: TestApp;
let conversationId: string;

beforeAll(async () => {
  pg = await createTestDatabase();
  t = await buildTestApp({ database: openPostgres(pg.url, 2), config: UNLIMITED });
  for (let i = 0; i < 3; i++) conversationId = (await post(t.app, "/api/messages/sms", smsSend())).json.conversation_id;
  await post(t.app, "/api/messages/sms", smsSend());
}, 60_000);
afterAll(async () => {
  await t.database.close();
  await pg.drop();
});

/** Two kinds of drift: the total off by 5, one conversation's message_count off by 98. */
async function corrupt(): Promise<void> {
  await t.database.sql.query("UPDATE conversation_counters SET conversations = conversations + 5 WHERE stripe = 7");
  await t.database.sql.query("UPDATE conversations SET message_count = 99 WHERE id = $1", [conversationId]);
}

const countersCheck = (results: Awaited<ReturnType<typeof runChecks>>) => results.find((c) => c.check === "counters");

describe("check and --repair-counters", () => {
  test("exact counters pass", async () => {
    const report = await runChecks(testConfig({ databaseUrl: pg.url }));
    expect(countersCheck(report)).toEqual({ check: "counters", status: "ok", message: "exact (4 conversations)" });
  });

  test("drift fails the check and names both kinds, pointing at the repair", async () => {
    await corrupt();
    const report = await runChecks(testConfig({ databaseUrl: pg.url }));
    expect(reportPasses(report, false)).toBe(false);
    expect(countersCheck(report)).toEqual({
      check: "counters",
      status: "error",
      message: "the counters say 9 conversation(s), the table holds 4; 1 message_count(s) off; run `messaging check --repair-counters`",
    });
  });

  test("the repair recomputes both and says what it fixed; the API's total is right again", async () => {
    const report = await runChecks(testConfig({ databaseUrl: pg.url }), { repairCounters: true });
    expect(countersCheck(report)).toEqual({
      check: "counters",
      status: "ok",
      message: "repaired: the counters say 9 conversation(s), the table holds 4; 1 message_count(s) off; now exact (4 conversations)",
    });
    await expectCountersExact(t.database);
    const again = await runChecks(testConfig({ databaseUrl: pg.url }), { repairCounters: true });
    expect(countersCheck(again)?.message).toBe("exact (4 conversations); nothing to repair");
  });

  test("a repair while new conversations are being created leaves the counters exact", async () => {
    await corrupt();
    const [sends] = await Promise.all([
      concurrently(100, () => post(t.app, "/api/messages/sms", smsSend())),
      Bun.sleep(5).then(() => repairCounters(t.database.sql)),
    ]);
    expect(sends.every((r) => r.status === 202)).toBe(true);
    await expectCountersExact(t.database);
  });

  test("through the binary: check exits 1 on drift, --repair-counters fixes it and exits 0", async () => {
    await ensureBinary();
    await corrupt();
    const env = { DATABASE_URL: pg.url };
    const failed = await runBinary(["check"], { env });
    expect(failed.exitCode).toBe(1);
    const [counts] = await t.database.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM conversations");
    expect(failed.stdout).toContain(`✗ counters: the counters say ${counts!.n + 5} conversation(s), the table holds ${counts!.n}`);
    const repaired = await runBinary(["check", "--repair-counters"], { env });
    expect(repaired.stdout).toContain("✓ counters: repaired:");
    expect(repaired.exitCode).toBe(0);
    expect(await counterDrift(t.database.sql)).toEqual({ counted: counts!.n, conversations: counts!.n, messageCountsOff: 0 });
  }, 300_000);
});
