/**
 * Benchmarks of events to the client app (issue 17), against the compiled binary and PostgreSQL, with a receiver
 * on loopback in this process. Not run by `bun test`. Prints one JSON line per figure, each with the load average
 * (the machine may be shared).
 *
 *   bun test/bench/events.ts [latency|rates|drain|cost|all]      (default: all; DATABASE server: TEST_DATABASE_URL or local)
 *
 * latency  events at 500 sends/s for 10 s with one endpoint subscribed to everything: commit → receiver p50/p99
 * rates    closed-loop send rate (32 clients, 5 s rounds, alternated twice): no endpoint, an endpoint on `*`,
 *          an endpoint that never answers (the send rate must stay ≥ 0.9× the one without)
 * drain    20,000 events routed to an endpoint while no instance POSTs, then one instance drains them
 * cost     what the outbox writes per delivered message with no endpoint: 5,000 sends, each delivered; the events
 *          table's row inserts, updates (HOT or not) and the router's updates per message, from pg_stat_user_tables
 *          once the instance has stopped (its statistics flushed); WAL bytes per message over the run written for
 *          this database (pg_walinspect's records whose blocks are this database's; other databases on a shared
 *          server write WAL too), in all and for the events table and its indexes
 */
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import postgres from "postgres";
import { ensureBinary, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { startReceiver } from "../events/receiver.ts";

const which = process.argv[2] ?? "all";
const MASTER_KEYS = `k1:${randomBytes(32).toString("base64")}`;
const load = () => loadavg().map((l) => Number(l.toFixed(2)));
const report = (figure: string, values: Record<string, unknown>) => console.log(JSON.stringify({ figure, ...values, loadavg: load() }));

function env(url: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: url,
    MESSAGING_MASTER_KEYS: MASTER_KEYS,
    SSRF_ALLOWLIST: "127.0.0.1",
    MESSAGING_EGRESS_ALLOW_HTTP: "true",
    API_RATE_LIMIT_PER_IP_PER_MIN: "10000000",
    API_RATE_LIMIT_PER_SENDER_PER_MIN: "10000000",
    LOG_LEVEL: "warn",
    ...extra,
  };
}

async function fresh(extra: Record<string, string> = {}): Promise<{ serve: ServeProcess; sql: postgres.Sql; url: string; done(): Promise<void> }> {
  const db = await createTestDatabase();
  const migrated = await runBinary(["migrate", "up"], { env: { DATABASE_URL: db.url } });
  if (migrated.exitCode !== 0) throw new Error(migrated.stderr);
  const serve = await startServe({ env: { ...env(db.url, extra), LOG_LEVEL: "info" } });
  const sql = postgres(db.url, { max: 3, onnotice: () => {} });
  return {
    serve,
    sql,
    url: db.url,
    done: async () => {
      await serve.stop().catch(() => 0);
      await sql.end();
      await db.drop();
    },
  };
}

async function addEndpoint(base: string, url: string): Promise<string> {
  const res = await fetch(`${base}/api/event-endpoints`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ url, events: ["*"] }) });
  if (res.status !== 201) throw new Error(`endpoint: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

let n = 0;
function send(base: string): Promise<boolean> {
  n += 1;
  const body = JSON.stringify({ from: `+1202555${String(n % 1000).padStart(4, "0")}`, to: "+18045550001", type: "sms", body: `bench ${n}`, attachments: null, timestamp: "2024-11-01T14:00:00Z" });
  return fetch(`${base}/api/messages/sms`, { method: "POST", headers: { "content-type": "application/json" }, body }).then(
    async (res) => {
      await res.arrayBuffer();
      return res.status === 202;
    },
    () => false,
  );
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function latency(): Promise<void> {
  const { serve, done } = await fresh();
  const receiver = startReceiver(() => 200);
  await addEndpoint(serve.url, receiver.url);
  await Bun.sleep(2500); // the workers read the endpoint list every 2 s
  const rate = 500;
  const seconds = 10;
  const started = performance.now();
  const pending: Promise<boolean>[] = [];
  for (let i = 0; i < rate * seconds; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await Bun.sleep(wait);
    pending.push(send(serve.url));
  }
  const accepted = (await Promise.all(pending)).filter(Boolean).length;
  const achieved = accepted / ((performance.now() - started) / 1000);
  const deadline = Date.now() + 60_000;
  while (receiver.hits.length < accepted * 2 && Date.now() < deadline) await Bun.sleep(100);
  const lags = receiver.hits.map((h) => h.at - Date.parse(h.body.created_at)).sort((a, b) => a - b);
  const byType = (type: string) => receiver.hits.filter((h) => h.body.type === type).map((h) => h.at - Date.parse(h.body.created_at)).sort((a, b) => a - b);
  const queued = byType("message.queued");
  report("event latency commit→receiver at 500 sends/s, one endpoint on *", {
    sends_accepted: accepted,
    achieved_sends_per_s: Math.round(achieved),
    events_received: receiver.hits.length,
    p50_ms: percentile(lags, 50),
    p99_ms: percentile(lags, 99),
    queued_p50_ms: percentile(queued, 50),
    queued_p99_ms: percentile(queued, 99),
  });
  receiver.close();
  await done();
}

async function closedLoop(base: string, seconds: number, clients = 32): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let ok = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < until) if (await send(base)) ok += 1;
    }),
  );
  return ok / seconds;
}

async function rates(): Promise<void> {
  const results: Record<string, number[]> = { none: [], all: [], hanging: [] };
  for (let round = 0; round < 2; round++) {
    for (const mode of ["none", "all", "hanging"] as const) {
      const { serve, done } = await fresh();
      const receiver = startReceiver(() => (mode === "hanging" ? "hang" : 200));
      if (mode !== "none") await addEndpoint(serve.url, receiver.url);
      await Bun.sleep(2500);
      await closedLoop(serve.url, 1); // warm-up
      results[mode]!.push(Math.round(await closedLoop(serve.url, 5)));
      receiver.close();
      await done();
    }
  }
  const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
  report("send rate, 32 clients, closed loop, 2 alternated rounds of 5 s", {
    sends_per_s_no_endpoint: results.none,
    sends_per_s_endpoint_all: results.all,
    sends_per_s_hanging_endpoint: results.hanging,
    ratio_all: Number((mean(results.all!) / mean(results.none!)).toFixed(3)),
    ratio_hanging: Number((mean(results.hanging!) / mean(results.none!)).toFixed(3)),
  });
}

async function drain(): Promise<void> {
  const { serve, sql, url, done } = await fresh({ MESSAGING_EVENT_WORKERS: "false" });
  const receiver = startReceiver(() => 200);
  await addEndpoint(serve.url, receiver.url);
  // 20,000 opt-out changes: each write's trigger records its event, as a real opt-out would.
  await sql.unsafe(`INSERT INTO opt_outs (from_addr, to_addr, source, reason)
                    SELECT '+1202555' || lpad(g::text, 5, '0'), '+13035550001', 'inbound', 'STOP' FROM generate_series(1, 20000) g`);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [row] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM event_deliveries`;
    if (row!.n >= 20_000 || Date.now() > deadline) break;
    await Bun.sleep(200);
  }
  await serve.stop();
  const second = await startServe({ env: { ...env(url), LOG_LEVEL: "info" } });
  const started = Date.now();
  while (new Set(receiver.hits.map((h) => h.body.id)).size < 20_000 && Date.now() - started < 300_000) await Bun.sleep(100);
  const seconds = (Date.now() - started) / 1000;
  report("drain of a 20,000-event backlog, one endpoint, one instance", {
    events: new Set(receiver.hits.map((h) => h.body.id)).size,
    posts: receiver.hits.length,
    seconds: Number(seconds.toFixed(2)),
    events_per_s: Math.round(20_000 / seconds),
  });
  await second.stop();
  receiver.close();
  await done().catch(() => {});
}

async function cost(): Promise<void> {
  const { serve, sql, done } = await fresh();
  const total = 5000;
  // A temporary replication slot keeps the run's WAL from being recycled until it is read (dropped with its session).
  const slot = await sql.reserve();
  const slotName = `events_cost_${process.pid}`;
  await slot`SELECT pg_create_physical_replication_slot(${slotName}, true, true)`;
  const [start] = await slot<{ lsn: string }[]>`SELECT pg_current_wal_lsn()::text AS lsn`;
  let issued = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (issued < total) {
        issued += 1;
        if (!(await send(serve.url))) throw new Error("a send was refused");
      }
    }),
  );
  const deadline = Date.now() + 120_000;
  while ((await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM messages WHERE status = 'sent'`)[0]!.n < total && Date.now() < deadline) await Bun.sleep(100);
  await Bun.sleep(1000); // a last routing round
  const [end] = await sql<{ lsn: string }[]>`SELECT pg_current_wal_lsn()::text AS lsn`;
  await serve.stop();
  await sql`CREATE EXTENSION IF NOT EXISTS pg_walinspect`;
  // Each record's first block names its relation: `rel <tablespace>/<database>/<filenode>`.
  const wal = await sql<{ rel: string; bytes: number }[]>`
    WITH w AS (
      SELECT record_length, substring(block_ref from 'rel [0-9]+/([0-9]+)/') AS db, substring(block_ref from 'rel [0-9]+/[0-9]+/([0-9]+)') AS node
        FROM pg_get_wal_records_info(${start!.lsn}::pg_lsn, ${end!.lsn}::pg_lsn))
    SELECT coalesce(c.relname, '?') AS rel, sum(record_length)::float8 AS bytes
      FROM w LEFT JOIN pg_class c ON pg_relation_filenode(c.oid) = w.node::oid
     WHERE w.db = (SELECT oid::text FROM pg_database WHERE datname = current_database())
     GROUP BY 1`;
  await slot`SELECT pg_drop_replication_slot(${slotName})`;
  slot.release();
  const walOf = (names: string[]) => wal.filter((w) => names.includes(w.rel)).reduce((sum, w) => sum + w.bytes, 0);
  const eventRelations = ["events", "events_pkey", "events_subject_idx", "events_created_brin", "events_feed_idx", "events_unsequenced_idx", "events_order_idx"];
  await Bun.sleep(1500);
  const rows = await sql<{ relname: string; ins: number; upd: number; hot: number }[]>`
    SELECT relname, n_tup_ins::int AS ins, n_tup_upd::int AS upd, n_tup_hot_upd::int AS hot
      FROM pg_stat_user_tables WHERE relname IN ('events', 'event_router')`;
  const [sent] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM messages WHERE status = 'sent'`;
  const of = (name: string) => rows.find((r) => r.relname === name) ?? { ins: 0, upd: 0, hot: 0 };
  const per = (n: number) => Number((n / sent!.n).toFixed(3));
  report("outbox writes per delivered message, no endpoint (5,000 sends)", {
    delivered: sent!.n,
    events_inserts: per(of("events").ins),
    events_updates: per(of("events").upd),
    events_hot_updates: per(of("events").hot),
    router_updates: per(of("event_router").upd),
    wal_bytes_per_message: Math.round(wal.reduce((sum, w) => sum + w.bytes, 0) / sent!.n),
    events_wal_bytes_per_message: Math.round(walOf(eventRelations) / sent!.n),
  });
  await done();
}

await ensureBinary();
if (which === "latency" || which === "all") await latency();
if (which === "rates" || which === "all") await rates();
if (which === "drain" || which === "all") await drain();
if (which === "cost" || which === "all") await cost();
