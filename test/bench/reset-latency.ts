/**
 * Answer latency across a PostgreSQL outage (issue 20, "prompt answers after a reset"): dist/messaging behind the
 * fault proxy (test/helpers/fault-proxy.ts) on a fresh database, 16 writers looping over a send, a keyed send and a
 * webhook (test/reliability/traffic.ts). Each run resets every connection and refuses new ones for 3–6 s, then
 * restores the database and polls /readyz every 50 ms. Prints per run and overall: requests, answers by status,
 * max and p99 latency, requests caught by the outage that were answered more than 1 s after the restore, and how
 * long /readyz took to answer 200 after it.
 *
 * What should hold at the defaults: every request answered within about the write-outcome bound (5 s) plus a
 * connect refused at once (the issue's ≈ 6.5 s), none more than 1 s after the restore, /readyz 200 within 2 s.
 *
 * Usage: bun test/bench/reset-latency.ts [runs=5]   (env: WRITERS=16; SHOW_LATE=1 lists the late answers; the
 * PostgreSQL at TEST_DATABASE_URL, as for the tests)
 */
import { answeredLate, type Answer, runOutage, startServerBehindProxy } from "../reliability/traffic.ts";

const RUNS = Number(process.argv[2] ?? 5);
const WRITERS = Number(process.env.WRITERS ?? 16);

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
};
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const setup = await startServerBehindProxy({});
const all: Answer[] = [];
try {
  for (let run = 1; run <= RUNS; run++) {
    const outageMs = 3000 + ((run - 1) * 3000) / Math.max(1, RUNS - 1);
    const result = await runOutage(setup, { writers: WRITERS, outageMs, settleMs: 8000 });
    const latencies = result.touched.map((a) => a.ms);
    const late = answeredLate(result, 1000);
    const byStatus: Record<number, number> = {};
    for (const a of result.touched) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
    console.log(
      `run ${run}: outage ${fmt(outageMs)}, ${result.touched.length} requests ${JSON.stringify(byStatus)}, ` +
        `max ${fmt(Math.max(...latencies))}, p99 ${fmt(percentile(latencies, 99))}, ` +
        `answered >1 s after restore: ${late.length}, /readyz 200 after ${Number.isFinite(result.readyAfterMs) ? fmt(result.readyAfterMs) : "never (15 s)"}`,
    );
    if (process.env.SHOW_LATE) {
      for (const a of late) {
        console.log(`  late: ${a.route} ${a.status}, sent ${fmt(a.start - result.cutAt)} after the cut, answered ${fmt(a.end - result.restoredAt)} after the restore`);
      }
    }
    all.push(...result.touched);
    await Bun.sleep(1000);
  }
  const latencies = all.map((a) => a.ms);
  console.log(`all ${RUNS} runs: ${all.length} requests, max ${fmt(Math.max(...latencies))}, p99 ${fmt(percentile(latencies, 99))}`);
} finally {
  await setup.close();
}
