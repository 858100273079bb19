// The background loops of an idle `serve` cost next to nothing (issue 19, "Request overhead"): on the embedded
// database they share the process and thread with the HTTP server. Counted through a wrapped SqlRunner: over an
// idle second the event router runs no routing statement (and, woken by the embedded database's statement
// activity instead of polling, not even its snapshot read), and the promoter in its embedded setting (a long idle
// poll) runs no statement at all, and the delivery workers (singleProcess) back off to a claim every few seconds;
// a write still gets routed, a scheduled send still goes out on time, and a retry still goes out at its time.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { SqlRunner } from "../../src/db/runner.ts";
import { Dispatcher } from "../../src/delivery/dispatcher.ts";
import { EventWorkers } from "../../src/events/worker.ts";
import { Promoter } from "../../src/modules/scheduling/service.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { accepted, type Provider, type ProviderOutcome, transientError } from "../../src/providers/provider.ts";
import { ProviderRegistry } from "../../src/providers/registry.ts";
import type { CredentialLookup } from "../../src/security/credential-lookup.ts";
import { VERSION } from "../../src/version.ts";
import { buildTestApp, type TestApp } from "../helpers/app.ts";
import { post, smsSend } from "../helpers/messaging.ts";
import { DISPATCH, silent } from "../modules/scheduling/workers.ts";

/** Counts the statements run through `sql` whose text matches. */
function counting(sql: SqlRunner): { sql: SqlRunner; count(match: RegExp): number; reset(): void } {
  let texts: string[] = [];
  const wrap = (inner: SqlRunner): SqlRunner => ({
    query: (text, params) => {
      texts.push(text);
      return inner.query(text, params);
    },
    transaction: (fn) => {
      texts.push("BEGIN");
      return inner.transaction((tx) => fn(wrap(tx)));
    },
  });
  return { sql: wrap(sql), count: (match) => texts.filter((t) => match.test(t)).length, reset: () => (texts = []) };
}

/** Lets the loops settle for `settleMs`, then counts afresh over one idle second. */
async function idleSecond(counter: { reset(): void }, settleMs: number): Promise<void> {
  await Bun.sleep(settleMs);
  counter.reset();
  await Bun.sleep(1000);
}

const noCredentials = { verifying: () => [] } as unknown as CredentialLookup;
const ROUTE = /INSERT INTO event_deliveries/;
/** The event workers as these tests run them: polling every 20 ms, so that a busy poll would show. */
const WORKER_OPTIONS = {
  concurrency: 4,
  timeoutMs: 1000,
  pollMs: 20,
  retryForMs: 60_000,
  disableAfterMs: 60_000,
  backoff: { baseMs: 100, capMs: 1000 },
  breaker: { failureThreshold: 5, openMs: 1000 },
  retentionDays: 0,
  snippetLength: 64,
  userAgent: `messaging/${VERSION}`,
  sampleMs: 60_000,
};

describe("idle background loops on the embedded database", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database: "embedded" });
  });
  afterAll(async () => {
    await t.close();
  });

  test("the event router skips its routing statement while nothing commits, and routes a send at once", async () => {
    const counter = counting(t.database.sql);
    const workers = new EventWorkers(
      { sql: counter.sql, credentials: noCredentials, egress: { request: async () => { throw new Error("no endpoint is configured in this test"); } }, metrics: t.metrics, logger: silent },
      { ...WORKER_OPTIONS, deliver: false },
    );
    workers.start();
    try {
      await idleSecond(counter, 300);
      // About 50 polls in that second; a busy-polling router would run the routing statement at each.
      expect(counter.count(ROUTE)).toBeLessThanOrEqual(1);
      expect(counter.count(/pg_current_snapshot/)).toBeGreaterThan(10);

      const [before] = await t.database.sql.query<{ event_id: string }>("SELECT event_id::text AS event_id FROM event_router WHERE id = 1");
      const sent = await post(t.app, "/api/messages/sms", smsSend());
      expect(sent.status).toBe(202);
      const deadline = Date.now() + 2000;
      let moved = false;
      while (!moved && Date.now() < deadline) {
        await Bun.sleep(20);
        const [now] = await t.database.sql.query<{ event_id: string }>("SELECT event_id::text AS event_id FROM event_router WHERE id = 1");
        moved = now!.event_id !== before!.event_id;
      }
      expect(moved).toBe(true);
    } finally {
      await workers.stop(1000);
    }
  });

  test("with the embedded database's statement activity the router waits long while idle, and another caller's send ends the wait", async () => {
    const activity = t.database.activity!;
    const counter = counting(activity.quietSql);
    const workers = new EventWorkers(
      {
        sql: counter.sql,
        activity,
        credentials: noCredentials,
        egress: { request: async () => { throw new Error("no endpoint is configured in this test"); } },
        metrics: t.metrics,
        logger: silent,
      },
      { ...WORKER_OPTIONS, deliver: true, idleMaxMs: 30_000 },
    );
    workers.start();
    try {
      await idleSecond(counter, 300);
      // Polling every 20 ms would look about 50 times; nothing else runs a statement here, so it does not look.
      expect(counter.count(/pg_current_snapshot/)).toBe(0);

      const [before] = await t.database.sql.query<{ event_id: string }>("SELECT event_id::text AS event_id FROM event_router WHERE id = 1");
      const sentAt = Date.now();
      const sent = await post(t.app, "/api/messages/sms", smsSend());
      expect(sent.status).toBe(202);
      let moved = false;
      while (!moved && Date.now() < sentAt + 3000) {
        await Bun.sleep(20);
        const [now] = await counter.sql.query<{ event_id: string }>("SELECT event_id::text AS event_id FROM event_router WHERE id = 1");
        moved = now!.event_id !== before!.event_id;
      }
      // Routed within the poll of the statement, not at the 30 s safety net.
      expect(moved).toBe(true);
      expect(counter.count(ROUTE)).toBeGreaterThanOrEqual(1);
    } finally {
      await workers.stop(1000);
    }
  });

  test("with an endpoint registered the router still waits long while idle, and a failed POST's retry goes out at its time", async () => {
    const activity = t.database.activity!;
    const counter = counting(activity.quietSql);
    const [endpoint] = await t.database.sql.query<{ id: string }>("INSERT INTO event_endpoints (url, events) VALUES ('http://127.0.0.1:9/idle', '{message.queued}') RETURNING id::text AS id");
    // The first POST fails, every later one is answered 204.
    const posts: number[] = [];
    const egress = {
      request: async () => {
        posts.push(Date.now());
        if (posts.length === 1) throw new Error("connection refused (the first POST fails)");
        return new Response(null, { status: 204 });
      },
    };
    const workers = new EventWorkers(
      { sql: counter.sql, activity, credentials: { verifying: () => ["s3cret"] } as unknown as CredentialLookup, egress: egress as never, metrics: t.metrics, logger: silent },
      // A retry 0.75-1.5 s after the failure; a claim's lease is 2 x 1 s + 5 s.
      { ...WORKER_OPTIONS, deliver: true, idleMaxMs: 30_000, backoff: { baseMs: 1500, capMs: 1500 } },
    );
    workers.start();
    try {
      await idleSecond(counter, 300);
      // Polling every 20 ms, as it did whenever an endpoint was registered, would run about 100 statements.
      expect(counter.count(/./)).toBeLessThanOrEqual(2);

      const sent = await post(t.app, "/api/messages/sms", smsSend());
      expect(sent.status).toBe(202);
      const deadline = Date.now() + 5000;
      while (posts.length < 2 && Date.now() < deadline) await Bun.sleep(20);
      expect(posts.length).toBe(2);
      // At the retry's time, not at the end of the failed claim's lease (7 s) nor of the long wait (30 s).
      expect(posts[1]! - posts[0]!).toBeGreaterThanOrEqual(700);
      expect(posts[1]! - posts[0]!).toBeLessThan(2500);
      const pending = async () =>
        (await t.database.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM event_deliveries WHERE endpoint_id = $1", [endpoint!.id]))[0]!.n;
      const settle = Date.now() + 2000;
      while ((await pending()) > 0 && Date.now() < settle) await Bun.sleep(20);
      expect(await pending()).toBe(0);

      // Idle again with the endpoint still registered: quiet again.
      await idleSecond(counter, 200);
      expect(counter.count(/./)).toBeLessThanOrEqual(2);
    } finally {
      await workers.stop(1000);
      await t.database.sql.query("DELETE FROM event_endpoints WHERE id = $1", [endpoint!.id]);
    }
  });

  test("the promoter with a long idle poll runs no statement while idle, and still promotes a send it was told of", async () => {
    const counter = counting(t.database.sql);
    const metrics = createMetrics({ version: VERSION });
    let queued = 0;
    const promoter = new Promoter(
      { sql: counter.sql, metrics, logger: silent, onQueued: () => queued++ },
      { pollMs: 20, idlePollMs: 30_000, batchSize: 10, sampleMs: 60_000 },
    );
    promoter.start();
    try {
      await idleSecond(counter, 300);
      expect(counter.count(/./)).toBe(0);

      const sendAt = new Date(Date.now() + 500);
      const sent = await post(t.app, "/api/messages/sms", smsSend({ send_at: sendAt.toISOString() }));
      expect(sent.status).toBe(202);
      promoter.scheduled(sendAt);
      const deadline = sendAt.getTime() + 1500;
      while (queued === 0 && Date.now() < deadline) await Bun.sleep(20);
      expect(queued).toBe(1);
    } finally {
      await promoter.stop();
    }
  });

  test("idle delivery workers back off on the embedded database; a send wakes them and a retry is claimed at its time", async () => {
    const counter = counting(t.database.sql);
    // Each message's first call fails; the calls are recorded per message (earlier tests left messages queued).
    const calls = new Map<string, number[]>();
    const provider: Provider = {
      name: "flaky",
      async send(message: { id: string }): Promise<ProviderOutcome> {
        const list = calls.get(message.id) ?? [];
        list.push(Date.now());
        calls.set(message.id, list);
        return list.length === 1 ? transientError("first call fails") : accepted(`flaky-${message.id}-${list.length}`);
      },
    } as Provider;
    const registry = new ProviderRegistry(
      { routes: { sms: ["flaky"], mms: ["flaky"], email: ["flaky"] }, providers: [{ name: "flaky", kind: "mock", timeoutMs: 1000 }] },
      () => provider,
    );
    const dispatcher = new Dispatcher(
      { sql: counter.sql, registry, metrics: createMetrics({ version: VERSION }), logger: silent },
      { ...DISPATCH, pollMs: 20, sampleMs: 60_000, singleProcess: true, backoff: { baseMs: 400, capMs: 400 } },
    );
    dispatcher.start();
    try {
      await idleSecond(counter, 1500);
      // Two loops polling every 20 ms would claim about 100 times.
      expect(counter.count(/locked_by/)).toBeLessThanOrEqual(4);

      const sent = await post(t.app, "/api/messages/sms", smsSend());
      expect(sent.status).toBe(202);
      const sentAt = Date.now();
      dispatcher.wake();
      const id = String(sent.json.id);
      const deadline = sentAt + 2500;
      while ((calls.get(id)?.length ?? 0) < 2 && Date.now() < deadline) await Bun.sleep(20);
      const mine = calls.get(id) ?? [];
      expect(mine.length).toBe(2);
      // The first call right away, the retry 200-400 ms later (backoff) plus at most a poll slot: not the idle bound.
      expect(mine[0]! - sentAt).toBeLessThan(500);
      expect(mine[1]! - mine[0]!).toBeLessThan(1000);
    } finally {
      await dispatcher.stop(1000);
    }
  });
});
