/**
 * Claims belong to live workers (delivery/liveness.ts), outcomes are never thrown away, and opt-outs are checked
 * again at dispatch — against a real PostgreSQL (and PGlite where the behaviour is the embedded one):
 * - a worker proved gone (no lock, unseen for the bound) has its claims taken over, counted uncertain; one
 *   whose lock is held somewhere, or that was seen lately, keeps them whatever its lease says;
 * - a worker whose session PostgreSQL ended reconnects, takes its lock again and keeps its claims;
 * - a result write that fails is kept and written again: one provider call, the message `sent`, and no
 *   other worker takes the message meanwhile; a stop that cannot write counts and leaves the claim;
 * - the embedded database frees a previous process's claims at start;
 * - a text queued before its recipient's STOP fails `recipient_opted_out` without a provider call.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { Writable } from "node:stream";
import postgres from "postgres";
import { Dispatcher, type DispatcherOptions } from "../../src/delivery/dispatcher.ts";
import { claimJobs, normalizedPhoneSql } from "../../src/delivery/jobs.ts";
import { WORKER_LOCK_CLASS } from "../../src/delivery/liveness.ts";
import type { SqlRunner } from "../../src/db/runner.ts";
import { normalizePhone } from "../../src/domain/address.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { createMetrics, type Metrics } from "../../src/observability/metrics.ts";
import { accepted, type Provider, type ProviderOutcome } from "../../src/providers/provider.ts";
import { ProviderRegistry } from "../../src/providers/registry.ts";
import { VERSION } from "../../src/version.ts";
import { buildTestApp, type TestApp } from "../helpers/app.ts";
import { metricValue, phone, post, smsSend, UNLIMITED } from "../helpers/messaging.ts";
import { TEST_DATABASE_URL } from "../helpers/database.ts";

const silent = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, done) => done() }) });

/** Counts calls per message; answers accepted after `delayMs`. */
class CountingProvider implements Provider {
  readonly calls = new Map<string, number>();
  constructor(
    readonly name = "p1",
    private readonly delayMs = 0,
  ) {}
  async send(message: { id: string }): Promise<ProviderOutcome> {
    this.calls.set(message.id, (this.calls.get(message.id) ?? 0) + 1);
    if (this.delayMs > 0) await Bun.sleep(this.delayMs);
    return accepted(`${this.name}-${message.id}`);
  }
  total(): number {
    return [...this.calls.values()].reduce((a, b) => a + b, 0);
  }
}

const OPTIONS: DispatcherOptions = {
  workers: 1,
  batchSize: 50,
  pollMs: 50,
  leaseMs: 1000,
  maxAttempts: 10,
  maxAgeMs: 3_600_000,
  backoff: { baseMs: 20, capMs: 200 },
  breaker: { failureThreshold: 1000, openMs: 30_000 },
  sampleMs: 1000,
  takeoverMs: 1000,
};

/** A runner whose result writes (the RECORD statement) fail while `failing` is set. */
function flakyResults(sql: SqlRunner): SqlRunner & { failing: boolean; losingAnswers: number; written: number } {
  const runner = {
    failing: false,
    /** Result writes that ran (committed), their answer lost or not. */
    written: 0,
    /** Result writes still to run and commit whose answer is then lost, as with a connection cut after the commit. */
    losingAnswers: 0,
    query: async <T>(text: string, params?: unknown[]) => {
      if (!text.includes("INSERT INTO delivery_attempts")) return sql.query<T>(text, params);
      if (runner.failing) throw new Error("connection lost (test)");
      const rows = await sql.query<T>(text, params);
      runner.written += 1;
      if (runner.losingAnswers > 0) {
        runner.losingAnswers -= 1;
        throw new Error("connection lost after the commit (test)");
      }
      return rows;
    },
    transaction: <T>(fn: (tx: SqlRunner) => Promise<T>) => sql.transaction(fn),
  };
  return runner;
}

describe.each(["postgres", "embedded"] as const)("delivery workers on %s", (database) => {
  let t: TestApp;
  const running: Dispatcher[] = [];
  beforeAll(async () => {
    t = await buildTestApp({ database, config: UNLIMITED });
  });
  afterEach(async () => {
    for (const d of running.splice(0)) await d.stop(1000);
    await t.database.sql.query("UPDATE messages SET run_at = NULL, locked_by = NULL, locked_until = NULL WHERE run_at IS NOT NULL");
    await t.database.sql.query("DELETE FROM delivery_workers");
  });
  afterAll(() => t.close());

  function start(provider: Provider, options: Partial<DispatcherOptions> = {}, sql: SqlRunner = t.database.sql): { dispatcher: Dispatcher; metrics: Metrics } {
    const registry = new ProviderRegistry(
      { routes: { sms: [provider.name], mms: [provider.name], email: [provider.name] }, providers: [{ name: provider.name, kind: "mock", timeoutMs: 30_000 }] },
      () => provider,
    );
    const metrics = createMetrics({ version: VERSION });
    const dispatcher = new Dispatcher({ sql, registry, metrics, logger: silent }, { ...OPTIONS, ...options });
    running.push(dispatcher);
    dispatcher.start();
    return { dispatcher, metrics };
  }

  async function send(n: number, from = phone()): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push((await post(t.app, "/api/messages/sms", smsSend({ from, to: phone(), body: `live ${i}` }))).json.id);
    return ids;
  }

  async function statuses(ids: string[]): Promise<Record<string, string>> {
    const rows = await t.database.sql.query<{ id: string; status: string; status_reason: string | null }>(
      "SELECT id::text AS id, status, status_reason FROM messages WHERE id = ANY($1::bigint[])",
      [`{${ids.join(",")}}`],
    );
    return Object.fromEntries(rows.map((r) => [r.id, r.status_reason ? `${r.status}: ${r.status_reason}` : r.status]));
  }

  async function until(what: string, probe: () => Promise<boolean>, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await probe())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await Bun.sleep(25);
    }
  }

  const allSent = (ids: string[]) => async () => Object.values(await statuses(ids)).every((s) => s === "sent");

  test("a worker gone (no lock, unseen for the bound) has its claims taken over, counted uncertain", async () => {
    const ids = await send(3);
    await t.database.sql.query("INSERT INTO delivery_workers (id, lock_key, seen_at) VALUES ('ghost', 4242, now())");
    const held = await claimJobs(t.database.sql, { holder: "ghost", limit: 100, leaseMs: 3_600_000, takeoverMs: 1000 });
    expect(held.jobs.length).toBe(3);
    const provider = new CountingProvider();
    const startedAt = Date.now();
    const { metrics } = start(provider);
    await until("the ghost's messages sent", allSent(ids));
    // Its lease had an hour to run: what freed the claims is the proof of death, within the bound (1 s) plus polls.
    // 10 s (the recovery bound), not the ~2 s it takes on a quiet machine: a loaded 2-core run took 5.07 s.
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    expect(provider.total()).toBe(3);
    expect(metricValue(await metrics.registry.metrics(), "messaging_delivery_uncertain_total")).toBe(3);
  });

  if (database === "postgres") {
    test("a worker whose lock is held keeps its claims however long unseen, and a lease that ran out frees nothing", async () => {
      const ids = await send(2);
      const holder = postgres(TEST_DATABASE_URL.replace(/\/[^/]*$/, `/${(await t.database.sql.query<{ db: string }>("SELECT current_database() AS db"))[0]!.db}`), { max: 1, onnotice: () => {} });
      try {
        await holder`SELECT pg_advisory_lock(${WORKER_LOCK_CLASS}, 777)`;
        await t.database.sql.query("INSERT INTO delivery_workers (id, lock_key, seen_at) VALUES ('slow', 777, now() - interval '1 hour')");
        await claimJobs(t.database.sql, { holder: "slow", limit: 100, leaseMs: 1000, takeoverMs: 1000 });
        const provider = new CountingProvider();
        start(provider);
        await Bun.sleep(2500); // past the bound and the lease
        expect(provider.total()).toBe(0);
        expect(await statuses(ids)).toEqual(Object.fromEntries(ids.map((id) => [id, "sending"])));
        // The holder's session ends: the lock goes with it, and the claims with the bound.
        await holder.end();
        await until("the released messages sent", allSent(ids));
        expect(provider.total()).toBe(2);
      } finally {
        await holder.end().catch(() => {});
      }
    });

    test("a worker whose database session is ended reconnects, takes its lock again and keeps its claims", async () => {
      const ids = await send(2);
      const slow = new CountingProvider("p1", 4000);
      const session = t.database.session!();
      const registry = new ProviderRegistry(
        { routes: { sms: ["p1"], mms: ["p1"], email: ["p1"] }, providers: [{ name: "p1", kind: "mock", timeoutMs: 30_000 }] },
        () => slow,
      );
      // The bound gives a reconnect (at the next heartbeat, within 1 s) its room: three heartbeats.
      const bound = { takeoverMs: 3000 };
      const a = new Dispatcher({ sql: t.database.sql, registry, metrics: createMetrics({ version: VERSION }), logger: silent, session }, { ...OPTIONS, ...bound });
      running.push(a);
      a.start();
      await until("both calls under way", async () => slow.total() === 2);
      const [row] = await t.database.sql.query<{ pid: number }>("SELECT backend_pid AS pid FROM delivery_workers WHERE id = $1", [a.holder]);
      await t.database.sql.query("SELECT pg_terminate_backend($1)", [row!.pid]);
      // Another worker, waiting for claims to free: it must get none while A lives.
      const other = new CountingProvider("p1");
      start(other, bound);
      await until("A registered on a new session", async () => {
        const [now] = await t.database.sql.query<{ pid: number; held: boolean }>(
          `SELECT w.backend_pid AS pid, EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objid = w.lock_key::oid AND l.pid = w.backend_pid) AS held
             FROM delivery_workers w WHERE w.id = $1`,
          [a.holder],
        );
        return now !== undefined && now.pid !== row!.pid && now.held;
      }, 5000);
      await until("A's messages sent", allSent(ids));
      expect(other.total()).toBe(0);
      expect(slow.total()).toBe(2);
    });
  }

  test("a result that cannot be written is kept and written again: one call, sent, never taken over meanwhile", async () => {
    const ids = await send(4);
    const sql = flakyResults(t.database.sql);
    sql.failing = true;
    const provider = new CountingProvider();
    const { metrics } = start(provider, {}, sql);
    await until("the calls made", async () => provider.total() === 4);
    await until("a failed write", async () => metricValue(await metrics.registry.metrics(), "messaging_delivery_result_write_failures_total") >= 2);
    // A second worker meanwhile finds nothing to take: the first one lives and holds the outcomes.
    const other = new CountingProvider();
    start(other);
    await Bun.sleep(1500);
    expect(other.total()).toBe(0);
    sql.failing = false;
    await until("the kept results written", allSent(ids));
    expect(provider.total()).toBe(4);
    const [attempts] = await t.database.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM delivery_attempts WHERE message_id = ANY($1::bigint[])", [`{${ids.join(",")}}`]);
    expect(attempts!.n).toBe(4);
  });

  test("a result write that committed but lost its answer is written again without a second attempt row", async () => {
    const ids = await send(3);
    const sql = flakyResults(t.database.sql);
    sql.losingAnswers = 1;
    const provider = new CountingProvider();
    const { metrics } = start(provider, {}, sql);
    await until("the results written", allSent(ids));
    expect(metricValue(await metrics.registry.metrics(), "messaging_delivery_result_write_failures_total")).toBeGreaterThanOrEqual(1);
    // The kept outcomes are written again, after the write backoff: the second write runs (and finds them written).
    await until("the write repeated", async () => sql.written >= 2);
    expect(provider.total()).toBe(3);
    const [attempts] = await t.database.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM delivery_attempts WHERE message_id = ANY($1::bigint[])", [`{${ids.join(",")}}`]);
    expect(attempts!.n).toBe(3);
  });

  test("a stop that still cannot write counts what it leaves, and keeps those claims for a takeover", async () => {
    const ids = await send(2);
    const sql = flakyResults(t.database.sql);
    sql.failing = true;
    const provider = new CountingProvider();
    const { dispatcher, metrics } = start(provider, {}, sql);
    await until("the calls made", async () => provider.total() === 2);
    await dispatcher.stop(500, 200);
    running.splice(running.indexOf(dispatcher), 1);
    expect(metricValue(await metrics.registry.metrics(), "messaging_delivery_results_unwritten_total")).toBe(2);
    const held = await t.database.sql.query<{ locked_by: string }>("SELECT locked_by FROM messages WHERE run_at IS NOT NULL AND id = ANY($1::bigint[])", [`{${ids.join(",")}}`]);
    expect(held.map((h) => h.locked_by.split("#")[0])).toEqual([dispatcher.holder, dispatcher.holder]);
    expect((await t.database.sql.query("SELECT 1 FROM delivery_workers WHERE id = $1", [dispatcher.holder])).length).toBe(1);
  });

  if (database === "embedded") {
    test("on the embedded database a previous process's claims are free at start", async () => {
      const ids = await send(2);
      await t.database.sql.query("INSERT INTO delivery_workers (id, lock_key, seen_at, connected_at) VALUES ('previous-process', 99, now(), now())");
      await claimJobs(t.database.sql, { holder: "previous-process", limit: 100, leaseMs: 3_600_000, takeoverMs: 60_000 });
      const provider = new CountingProvider();
      const startedAt = Date.now();
      start(provider, { takeoverMs: 60_000, singleProcess: true });
      await until("the previous process's messages sent", allSent(ids), 5000);
      expect(Date.now() - startedAt).toBeLessThan(5000);
      expect(provider.total()).toBe(2);
    });
  }

  test("a text queued before its recipient's STOP fails recipient_opted_out at dispatch, with no provider call", async () => {
    const us = phone();
    const them = phone();
    const queued = (await post(t.app, "/api/messages/sms", smsSend({ from: us, to: them }))).json.id as string;
    const other = (await post(t.app, "/api/messages/sms", smsSend({ from: us, to: phone() }))).json.id as string;
    const stop = await post(t.app, "/api/webhooks/sms", { ...smsSend({ from: them, to: us, body: "STOP" }), messaging_provider_id: `p-${them}` });
    expect(stop.status).toBeLessThan(300);
    const provider = new CountingProvider();
    start(provider);
    await until("both final", async () => Object.values(await statuses([queued, other])).every((s) => s !== "queued" && s !== "sending"));
    expect(await statuses([queued, other])).toEqual({ [queued]: "failed: recipient_opted_out", [other]: "sent" });
    expect(provider.calls.has(queued)).toBe(false);
    const [attempts] = await t.database.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM delivery_attempts WHERE message_id = $1", [queued]);
    expect(attempts!.n).toBe(0);
  });
});

test("normalizedPhoneSql gives normalizePhone's answers", async () => {
  const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    for (const raw of ["+1 (555) 777-0004", "555.777.0005", "  +15550001111 ", "\t+44 20 7946 0958\n", "12345", "+", "1+2"]) {
      const [row] = await sql.unsafe<{ n: string }[]>(`SELECT ${normalizedPhoneSql("$1::text")} AS n`, [raw]);
      expect(`${raw} -> ${row!.n}`).toBe(`${raw} -> ${normalizePhone(raw)}`);
    }
  } finally {
    await sql.end();
  }
});
