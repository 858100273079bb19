/**
 * Answer latency across a PostgreSQL outage (issue 20, "prompt answers after a reset"): dist/messaging behind the
 * fault proxy (test/helpers/fault-proxy.ts) on a fresh database, 16 writers looping over a send, a keyed send and a
 * webhook. Each run resets every connection and refuses new ones for 3–6 s, then restores the database and polls
 * /readyz every 50 ms. Prints per run and overall: requests, answers by status, max and p99 latency, requests
 * answered more than 1 s after the restore, and how long /readyz took to answer 200 after it.
 *
 * The bound at the defaults: every request answered within the write-outcome bound plus the connect timeout
 * (5 s + 5 s would be the naive sum; the service promises ~6.5 s, see README "A 503 tells the truth"), none after
 * the database has been back for 1 s, and /readyz 200 within 2 s of the restore.
 *
 * Usage: bun test/bench/reset-latency.ts [runs=5]   (env: WRITERS; needs the PostgreSQL at
 * TEST_DATABASE_URL like the tests)
 */
import { startServerBehindProxy } from "../reliability/traffic.ts";
import { phone, smsSend, smsWebhook } from "../helpers/messaging.ts";

const RUNS = Number(process.argv[2] ?? 5);
const WRITERS = Number(process.env.WRITERS ?? 16);

interface Timed {
  route: string;
  status: number;
  start: number;
  end: number;
}

async function write(url: string, n: number): Promise<Timed> {
  const route = ["send", "keyed send", "webhook"][n % 3]!;
  const [path, body, headers] =
    route === "send"
      ? ["/api/messages/sms", smsSend({ from: phone() }), {}]
      : route === "keyed send"
        ? ["/api/messages/sms", smsSend({ from: phone() }), { "idempotency-key": crypto.randomUUID() }]
        : ["/api/webhooks/sms", smsWebhook(), {}];
  const start = performance.now();
  try {
    const res = await fetch(url + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    await res.arrayBuffer();
    return { route, status: res.status, start, end: performance.now() };
  } catch {
    return { route, status: 0, start, end: performance.now() };
  }
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
};
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const setup = await startServerBehindProxy({});
const { proxy, server } = setup;
const all: Timed[] = [];
const summaries: string[] = [];
try {
  for (let run = 1; run <= RUNS; run++) {
    const outageMs = 3000 + ((run - 1) * 3000) / Math.max(1, RUNS - 1);
    const answers: Timed[] = [];
    let stopping = false;
    const writers = Array.from({ length: WRITERS }, async (_, n) => {
      for (let i = n; !stopping; i++) {
        const a = await write(server.url, i);
        answers.push(a);
        if (a.status === 0) await Bun.sleep(50);
      }
    });
    await Bun.sleep(1500);
    const cutAt = performance.now();
    proxy.refuse();
    proxy.reset();
    await Bun.sleep(outageMs);
    await proxy.heal();
    const restoredAt = performance.now();
    let readyAfter = Number.NaN;
    while (performance.now() - restoredAt < 15_000) {
      const ready = await fetch(`${server.url}/readyz`).then((r) => r.status, () => 0);
      if (ready === 200) {
        readyAfter = performance.now() - restoredAt;
        break;
      }
      await Bun.sleep(50);
    }
    await Bun.sleep(Math.max(0, 8000 - (performance.now() - restoredAt)));
    stopping = true;
    await Promise.all(writers);
    // The requests the outage could touch: those started from 1 s before the cut on.
    const touched = answers.filter((a) => a.end >= cutAt - 1000);
    const latencies = touched.map((a) => a.end - a.start);
    // In flight while the database was away, yet answered more than 1 s after it was back.
    const late = touched.filter((a) => a.start < restoredAt && a.end > restoredAt + 1000);
    if (process.env.SHOW_SLOW) {
      for (const a of late.slice(0, 20)) {
        console.log(`  late: ${a.route} ${a.status}, started ${fmt(a.start - cutAt)} after the cut, answered ${fmt(a.end - restoredAt)} after the restore`);
      }
    }
    const byStatus: Record<number, number> = {};
    for (const a of touched) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
    const line =
      `run ${run}: outage ${fmt(outageMs)}, ${touched.length} requests ${JSON.stringify(byStatus)}, ` +
      `max ${fmt(Math.max(...latencies))}, p99 ${fmt(percentile(latencies, 99))}, ` +
      `answered >1 s after restore: ${late.length}, /readyz 200 after ${Number.isNaN(readyAfter) ? "never (15 s)" : fmt(readyAfter)}`;
    console.log(line);
    summaries.push(line);
    all.push(...touched);
    await Bun.sleep(1000);
  }
  const latencies = all.map((a) => a.end - a.start);
  console.log(`all ${RUNS} runs: ${all.length} requests, max ${fmt(Math.max(...latencies))}, p99 ${fmt(percentile(latencies, 99))}`);
  if (process.env.SHOW_SLOW) {
    // The service's own request lines over 6.5 s, for finding where the time goes.
    for (const line of server.stdout().split("\n")) if (/"duration_ms":(\d{5,}|[7-9]\d{3}|6[5-9]\d{2})/.test(line)) console.log(line);
  }
} finally {
  await setup.close();
}
