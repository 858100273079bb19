/**
 * Prompt answers after a PostgreSQL connection reset (issue 20), through the compiled binary and the fault proxy:
 * every connection is reset and new ones refused for 4 s while writers keep sending. Each request is answered
 * within the write-outcome bound plus a margin (6.5 s at the defaults), the requests caught by the outage are
 * answered soon after the database is back, and /readyz is 200 within 2 s of the restore. Before the pool's
 * reconnect backoff was capped (db/client.ts reconnectBackoffSecs), requests took up to 19.5 s and were answered
 * up to 17 s after the restore. test/bench/reset-latency.ts measures the same over five runs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { reconnectBackoffSecs } from "../../src/db/client.ts";
import { answeredLate, runOutage, type ServerBehindProxy, startServerBehindProxy, write } from "./traffic.ts";

const OUTAGE_MS = 4000;
/** The write-outcome bound (5 s) plus what a connect refused at once and a busy machine add. */
const ANSWER_BOUND_MS = 6500;
/** The contract says 1 s after the restore; the margin is for a shared 2-core machine (at load 17 the bench saw 1.7 s; before the fix, 10–17 s). */
const AFTER_RESTORE_MS = 2000;

describe("reconnectBackoffSecs", () => {
  test("grows from a few milliseconds and never waits more than a quarter of a second", () => {
    for (let retries = 0; retries < 40; retries++) {
      const secs = reconnectBackoffSecs(retries);
      expect(secs).toBeGreaterThan(0);
      expect(secs).toBeLessThanOrEqual(0.25);
    }
    expect(reconnectBackoffSecs(1)).toBeLessThan(0.03);
  });
});

let setup: ServerBehindProxy;
beforeAll(async () => {
  setup = await startServerBehindProxy({});
}, 120_000);
afterAll(() => setup?.close());

describe("a 4 s PostgreSQL outage under write traffic", () => {
  test("every request is answered within 6.5 s, promptly after the restore, and /readyz is 200 within 2 s", async () => {
    const run = await runOutage(setup, { writers: 8, outageMs: OUTAGE_MS, settleMs: 4000 });
    expect(run.touched.length).toBeGreaterThan(0);
    // Something was refused during the outage, honestly (503), and nothing hung or failed otherwise.
    expect(run.touched.some((a) => a.status === 503)).toBe(true);
    expect(run.touched.filter((a) => a.status !== 202 && a.status !== 503)).toEqual([]);
    const slowest = Math.max(...run.touched.map((a) => a.ms));
    const late = answeredLate(run, AFTER_RESTORE_MS);
    console.log(
      `4 s outage: ${run.touched.length} requests, slowest ${Math.round(slowest)} ms, answered >${AFTER_RESTORE_MS} ms after the restore: ${late.length}, /readyz 200 after ${Math.round(run.readyAfterMs)} ms`,
    );
    expect(slowest).toBeLessThan(ANSWER_BOUND_MS);
    expect(late).toEqual([]);
    expect(run.readyAfterMs).toBeLessThan(2000);
    // And it writes again.
    expect((await write(setup.server.url, "send", 10_000)).status).toBe(202);
  }, 60_000);
});
