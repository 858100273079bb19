/**
 * Scheduled sends benchmark (issue 18), against dist/messaging with its mock provider (latency 0):
 *  1. lag: 1,000 messages scheduled through the API across 10 s; the lag of each is its first provider call
 *     (`delivery_attempts.started_at`, read through GET /api/messages/{id}) minus its `send_at`; p50/p99/max.
 *     On PostgreSQL and on the embedded database.
 *  2. burst (PostgreSQL): 100,000 scheduled messages due in the same second (seeded with SQL: the drain is what is
 *     measured, not the acceptance), while a client sends fresh messages at a steady rate; the time until the last
 *     scheduled one was handed to the provider, and the fresh sends' 202 → provider-call latency and achieved rate,
 *     next to the same fresh load without a backlog.
 * Every figure is printed with /proc/loadavg at that moment: the machine is shared.
 *
 * Usage: bun test/bench/schedule.ts   (env: BASE_DB_URL, LAG_MESSAGES=1000, LAG_SPREAD_MS=10000, BURST=100000,
 *                                      FRESH_RATE=200, ONLY=lag|lag-embedded|burst)
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";

const ROOT = join(import.meta.dir, "..", "..");
const BINARY = join(ROOT, "dist", "messaging");
const BASE = process.env.BASE_DB_URL ?? "postgres://postgres@127.0.0.1:5432";
const LAG_MESSAGES = Number(process.env.LAG_MESSAGES ?? 1000);
const LAG_SPREAD_MS = Number(process.env.LAG_SPREAD_MS ?? 10_000);
const BURST = Number(process.env.BURST ?? 100_000);
const FRESH_RATE = Number(process.env.FRESH_RATE ?? 200);
const ONLY = process.env.ONLY;

const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
const ms = (n: number) => `${Math.round(n)} ms`;

const children: ReturnType<typeof Bun.spawn>[] = [];
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));

async function serve(env: Record<string, string>, cwd: string): Promise<string> {
  const child = Bun.spawn([BINARY, "serve", "--migrate"], {
    cwd,
    env: {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      MESSAGING_AUTH: "off",
      API_RATE_LIMIT_PER_IP_PER_MIN: "10000000",
      API_RATE_LIMIT_PER_SENDER_PER_MIN: "10000000",
      ...env,
    },
    stdout: "pipe",
    stderr: "inherit",
  });
  children.push(child);
  const decoder = new TextDecoder();
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  let out = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out += decoder.decode(value);
    const m = /"port":(\d+)[^\n]*"messaging listening"|"messaging listening"[^\n]*"port":(\d+)/.exec(out);
    if (m) {
      // Keep draining its output so the pipe never fills.
      void (async () => {
        while (!(await reader.read().catch(() => ({ done: true }))).done);
      })();
      return `http://127.0.0.1:${m[1] ?? m[2]}`;
    }
  }
  throw new Error(`serve exited before listening:\n${out}`);
}

async function api(url: string, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

const sms = (i: number, extra: Record<string, unknown> = {}) => ({
  from: `+1404${String(i % 1000).padStart(7, "0")}`,
  to: "+15055550100",
  type: "sms",
  body: `bench ${i}`,
  attachments: null,
  timestamp: "2024-11-01T12:00:00Z",
  ...extra,
});

/** Runs `tasks` with at most `width` in flight. */
async function pool<T>(n: number, width: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

async function lag(database: "postgres" | "embedded"): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "msg-bench-schedule-"));
  const db = `msg_bench_schedule_${process.pid}`;
  const admin = postgres(`${BASE}/postgres`, { max: 1, onnotice: () => {} });
  try {
    let env: Record<string, string>;
    if (database === "postgres") {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await admin.unsafe(`CREATE DATABASE ${db}`);
      env = { DATABASE_URL: `${BASE}/${db}` };
    } else {
      env = { MESSAGING_DATA_DIR: join(dir, "data") };
    }
    const url = await serve(env, dir);
    await api(url, "PUT", "/api/provider/mock/config", { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null, latency_ms: 0, delivery_report_pct: 0 });
    // Far enough ahead that every send is accepted before the first one is due (the embedded database commits
    // each scheduled send on its own, with its own WAL sync: about 20 ms each on a loaded machine).
    const start = Date.now() + Number(process.env.LAG_LEAD_MS ?? (database === "embedded" ? 40_000 : 8000));
    const ids = await pool(LAG_MESSAGES, 16, async (i) => {
      const at = start + Math.floor((i * LAG_SPREAD_MS) / LAG_MESSAGES);
      return (await api(url, "POST", "/api/messages/sms", sms(i, { send_at: new Date(at).toISOString() }))).id as string;
    });
    const acceptedBy = Date.now();
    await Bun.sleep(Math.max(0, start + LAG_SPREAD_MS + 3000 - Date.now()));
    const lags = await pool(ids.length, 16, async (i) => {
      const m = await api(url, "GET", `/api/messages/${ids[i]}`);
      if (m.status !== "sent") throw new Error(`message ${ids[i]} is ${m.status}`);
      if (m.send_at === null) throw new Error(`message ${ids[i]} was accepted after its send_at: raise LAG_LEAD_MS`);
      return Date.parse(m.attempts[0].started_at) - Date.parse(m.send_at);
    });
    lags.sort((a, b) => a - b);
    console.log(
      `lag ${database}: ${LAG_MESSAGES} messages across ${LAG_SPREAD_MS / 1000} s (accepted ${ms(start - acceptedBy)} before the first was due): ` +
        `p50 ${ms(quantile(lags, 0.5))}, p99 ${ms(quantile(lags, 0.99))}, max ${ms(lags.at(-1)!)}, min ${ms(lags[0]!)}; load ${load()}`,
    );
  } finally {
    children.splice(0).forEach((c) => c.kill("SIGTERM"));
    await Bun.sleep(500);
    if (database === "postgres") await admin.unsafe(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Sends fresh messages at FRESH_RATE for `seconds`; returns their ids. */
async function freshLoad(url: string, seconds: number, tag: number): Promise<string[]> {
  const ids: string[] = [];
  const started = Date.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; Date.now() - started < seconds * 1000; i++) {
    const due = started + (i * 1000) / FRESH_RATE;
    if (due > Date.now()) await Bun.sleep(due - Date.now());
    inFlight.push(api(url, "POST", "/api/messages/sms", sms(tag * 1_000_000 + i)).then((r) => void ids.push(r.id)));
  }
  await Promise.all(inFlight);
  return ids;
}

/** The fresh sends' 202 → first provider call latency (ms, sorted) once all are sent. */
async function freshLatency(sql: postgres.Sql, ids: string[]): Promise<number[]> {
  for (;;) {
    const [row] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM messages WHERE id = ANY(${ids}::bigint[]) AND status = 'sent'`;
    if (row!.n === ids.length) break;
    await Bun.sleep(200);
  }
  const rows = await sql<{ ms: number }[]>`
    SELECT (extract(epoch FROM min(a.started_at) - m.created_at) * 1000)::float8 AS ms
      FROM messages m JOIN delivery_attempts a ON a.message_id = m.id WHERE m.id = ANY(${ids}::bigint[]) GROUP BY m.id, m.created_at`;
  return rows.map((r) => Number(r.ms)).sort((a, b) => a - b);
}

async function burst(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "msg-bench-burst-"));
  const db = `msg_bench_burst_${process.pid}`;
  const admin = postgres(`${BASE}/postgres`, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${db}`);
  const sql = postgres(`${BASE}/${db}`, { max: 4, onnotice: () => {} });
  try {
    const url = await serve({ DATABASE_URL: `${BASE}/${db}` }, dir);
    await api(url, "PUT", "/api/provider/mock/config", { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null, latency_ms: 0, delivery_report_pct: 0 });
    const baseline = await freshLatency(sql, await freshLoad(url, 5, 1));
    console.log(
      `fresh sends without a backlog: ${baseline.length} at ${FRESH_RATE}/s, 202 → provider call p50 ${ms(quantile(baseline, 0.5))}, ` +
        `p99 ${ms(quantile(baseline, 0.99))}; load ${load()}`,
    );
    // The seed is written straight to the tables, as the send path would have written it: conversations counted,
    // messages `scheduled` with their send_at, one scheduled_messages row each, all due in the same second.
    const seeded = Date.now();
    const [due] = await sql<{ at: Date }[]>`SELECT date_trunc('second', now()) + interval '20 seconds' AS at`;
    await sql.unsafe(
      `WITH c AS (
         INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
         SELECT 'sms', '+1206555' || lpad(g::text, 4, '0'), '+18045550003', 'sms:+1206555' || lpad(g::text, 4, '0') || '<->+18045550003', $1::int / 500, now()
           FROM generate_series(1, 500) g RETURNING id, participant_a),
       m AS (
         INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp, send_at, segments, encoding)
         SELECT c.id, 'outbound', 'sms', 'sms', c.participant_a, '+18045550003', 'burst ' || n, 'scheduled', now(), $2::timestamptz, 1, 'GSM-7'
           FROM c, generate_series(1, $1::int / 500) n RETURNING id, send_at)
       INSERT INTO scheduled_messages (message_id, send_at) SELECT id, send_at FROM m`,
      [BURST, due!.at],
    );
    const dueAt = due!.at.getTime();
    console.log(`seeded ${BURST} messages due at ${due!.at.toISOString()} in ${ms(Date.now() - seeded)}`);
    await Bun.sleep(Math.max(0, dueAt - Date.now()));
    const fresh = freshLoad(url, 30, 2);
    let drainedAt = 0;
    for (;;) {
      const [row] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM messages WHERE body LIKE 'burst %' AND status IN ('scheduled', 'queued', 'sending')`;
      if (row!.n === 0) {
        drainedAt = Date.now();
        break;
      }
      if (process.env.SAMPLE) {
        const q = await sql`
          SELECT m.body LIKE 'burst %' AS burst, m.status, count(*)::int AS n,
                 (extract(epoch FROM now() - min(m.created_at)))::float8 AS oldest_s
            FROM messages m WHERE m.run_at IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2`;
        console.log(`  ${Math.round((Date.now() - dueAt) / 1000)} s: ${q.map((r) => `${r.burst ? "burst" : "fresh"} ${r.status} ${r.n} (oldest ${Number(r.oldest_s).toFixed(1)} s)`).join(", ")}`);
      }
      await Bun.sleep(250);
    }
    const loadAtDrain = load();
    const [last] = await sql<{ at: Date; n: number }[]>`
      SELECT max(a.started_at) AS at, count(DISTINCT a.message_id)::int AS n FROM delivery_attempts a JOIN messages m ON m.id = a.message_id WHERE m.body LIKE 'burst %'`;
    const freshIds = await fresh;
    const during = await freshLatency(sql, freshIds);
    const handed = last!.at.getTime() - dueAt;
    console.log(
      `burst: ${last!.n} of ${BURST} due in one second handed to the provider within ${ms(handed)} ` +
        `(${Math.round(last!.n / (handed / 1000))}/s; all sent ${ms(drainedAt - dueAt)} after the due second by this poll); load ${loadAtDrain}`,
    );
    console.log(
      `fresh sends during the burst: ${freshIds.length} in 30 s (${Math.round(freshIds.length / 30)}/s asked ${FRESH_RATE}/s), ` +
        `202 → provider call p50 ${ms(quantile(during, 0.5))}, p99 ${ms(quantile(during, 0.99))}, max ${ms(during.at(-1)!)}; load ${load()}`,
    );
    // The reference: the same delivery draining plain queued messages (no schedule), as the send path stores them.
    const reference = Math.min(BURST, 20_000);
    await sql.unsafe(
      `WITH c AS (SELECT id, participant_a FROM conversations ORDER BY id LIMIT 500),
       m AS (
         INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp, segments, encoding, run_at)
         SELECT c.id, 'outbound', 'sms', 'sms', c.participant_a, '+18045550003', 'plain ' || n, 'queued', now(), 1, 'GSM-7', now()
           FROM c, generate_series(1, $1::int / 500) n RETURNING id)
       SELECT count(*) FROM m`,
      [reference],
    );
    const plainFrom = Date.now();
    for (;;) {
      const [row] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM messages WHERE body LIKE 'plain %' AND status IN ('queued', 'sending')`;
      if (row!.n === 0) break;
      await Bun.sleep(250);
    }
    const plainMs = Date.now() - plainFrom;
    console.log(`reference: ${reference} plain queued messages drained in ${ms(plainMs)} (${Math.round(reference / (plainMs / 1000))}/s) by the same process; load ${load()}`);
  } finally {
    children.splice(0).forEach((c) => c.kill("SIGTERM"));
    await Bun.sleep(500);
    await sql.end();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {});
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!ONLY || ONLY === "lag") await lag("postgres");
if (!ONLY || ONLY === "lag-embedded") await lag("embedded");
if (!ONLY || ONLY === "burst") await burst();
process.exit(0);
