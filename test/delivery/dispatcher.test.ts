/**
 * The dispatcher over a real database with scripted providers: delivery to `sent`, the attempt log,
 * failover along the chain, permanent errors, retries with Retry-After, the attempt and age limits, leases
 * that run out, graceful release at stop, pacing, and the breaker's bound on calls to a failing provider.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { Writable } from "node:stream";
import { Dispatcher, type DispatcherOptions } from "../../src/delivery/dispatcher.ts";
import { claimJobs } from "../../src/delivery/jobs.ts";
import { ProviderRegistry, type ProviderSpec } from "../../src/providers/registry.ts";
import type { Routes } from "../../src/domain/provider-routes.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import {
  accepted,
  type OutboundMessage,
  permanentError,
  type Provider,
  type ProviderOutcome,
  rateLimited,
  transientError,
} from "../../src/providers/provider.ts";
import { VERSION } from "../../src/version.ts";
import { buildTestApp, type TestApp } from "../helpers/app.ts";
import { countJobs, countRows, emailSend, get, metricValue, post, smsSend, UNLIMITED } from "../helpers/messaging.ts";

const silent = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, done) => done() }) });

/** A provider whose answers come from `answer(call number for this message, message id)`; it logs every call. */
class ScriptedProvider implements Provider {
  readonly calls: { id: string; key: string; at: number }[] = [];
  constructor(
    readonly name: string,
    private readonly answer: (n: number, id: string, signal: AbortSignal) => ProviderOutcome | Promise<ProviderOutcome>,
  ) {}
  async send(message: { id: string }, options: { idempotencyKey: string; signal: AbortSignal }): Promise<ProviderOutcome> {
    this.calls.push({ id: message.id, key: options.idempotencyKey, at: Date.now() });
    const n = this.calls.filter((c) => c.id === message.id).length;
    return this.answer(n, message.id, options.signal);
  }
}

const OPTIONS: DispatcherOptions = {
  workers: 2,
  batchSize: 50,
  pollMs: 50,
  leaseMs: 1000,
  maxAttempts: 10,
  maxAgeMs: 3_600_000,
  backoff: { baseMs: 20, capMs: 200 },
  breaker: { failureThreshold: 5, openMs: 30_000 },
  sampleMs: 100,
};

let t: TestApp;
let running: Dispatcher | undefined;

function startDispatcher(providers: Provider[], routes: Routes, options: Partial<DispatcherOptions> = {}, specs: Partial<ProviderSpec>[] = []) {
  const byName = new Map(providers.map((p) => [p.name, p]));
  const registry = new ProviderRegistry(
    {
      routes,
      providers: providers.map((p, i) => ({ name: p.name, kind: "mock" as const, timeoutMs: 1000, ...specs[i] })),
    },
    (spec) => byName.get(spec.name)!,
  );
  const metrics = createMetrics({ version: VERSION });
  const dispatcher = new Dispatcher({ sql: t.database.sql, registry, metrics, logger: silent }, { ...OPTIONS, ...options });
  running = dispatcher;
  return { dispatcher, metrics };
}

const only = (name: string): Routes => ({ sms: [name], mms: [name], email: [name] });

async function send(n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await post(t.app, "/api/messages/sms", smsSend());
    expect(res.status).toBe(202);
    ids.push(res.json.id);
  }
  return ids;
}

async function statuses(ids: string[]): Promise<Record<string, number>> {
  const rows = await t.database.sql.query<{ status: string; n: number }>(
    "SELECT status, count(*)::int AS n FROM messages WHERE id = ANY($1::bigint[]) GROUP BY status",
    [`{${ids.join(",")}}`],
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

async function until(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(20);
  }
}

const allIn = (ids: string[], status: string) => async () => (await statuses(ids))[status] === ids.length;

for (const database of ["postgres", "embedded"] as const) describe(`delivery on ${database}`, () => {
  beforeAll(async () => {
    t = await buildTestApp({ config: UNLIMITED, database });
  });
  afterAll(async () => {
    await t.close();
  });
  afterEach(async () => {
    await running?.stop(1000);
    running = undefined;
    // Each test starts from an empty queue.
    await t.database.sql.query("UPDATE messages SET run_at = NULL, locked_by = NULL, locked_until = NULL WHERE run_at IS NOT NULL");
  });

  test("every queued message ends sent, with its provider, provider id and one attempt", async () => {
    const provider = new ScriptedProvider("p1", (_n, id) => accepted(`p1-${id}`));
    const { dispatcher, metrics } = startDispatcher([provider], only("p1"));
    const ids = await send(30);
    dispatcher.start();
    await until(allIn(ids, "sent"));
    expect(await countJobs(t.database, "message_id = ANY($1::bigint[])", [`{${ids.join(",")}}`])).toBe(0);
    const detail = await get(t.app, `/api/messages/${ids[0]}`);
    expect(detail.json.status).toBe("sent");
    expect(detail.json.attempts).toHaveLength(1);
    expect(detail.json.attempts[0]).toMatchObject({ attempt: 1, provider: "p1", outcome: "accepted" });
    const [row] = await t.database.sql.query<{ provider: string; provider_message_id: string }>(
      "SELECT provider, provider_message_id FROM messages WHERE id = $1",
      [ids[0]],
    );
    expect(row).toEqual({ provider: "p1", provider_message_id: `p1-${ids[0]}` });
    expect(new Set(provider.calls.map((c) => c.key)).size).toBe(30);
    expect(provider.calls[0]!.key).toBe(`messaging-msg-${provider.calls[0]!.id}`);
    const text = await metrics.registry.metrics();
    expect(metricValue(text, "messaging_worker_processed_total")).toBe(30);
    expect(metricValue(text, "messaging_delivery_attempts_total", { provider: "p1", outcome: "accepted" })).toBe(30);
    expect(metricValue(text, "messaging_messages_status_total", { status: "sent" })).toBe(30);
    expect(metricValue(text, "messaging_messages_status_total", { status: "sending" })).toBe(30);
  });

  test("the provider is handed an email's subject (given or default) and no subject for an sms", async () => {
    const seen: OutboundMessage[] = [];
    const provider: Provider = {
      name: "p-subject",
      send: async (message) => {
        seen.push(message);
        return accepted(`s-${message.id}`);
      },
    };
    const { dispatcher } = startDispatcher([provider], only("p-subject"));
    const given = await post(t.app, "/api/messages/email", emailSend({ subject: "Your receipt" }));
    const fallback = await post(t.app, "/api/messages/email", emailSend({ body: "Short note" }));
    const sms = await post(t.app, "/api/messages/sms", smsSend());
    const ids = [given.json.id, fallback.json.id, sms.json.id];
    dispatcher.start();
    await until(allIn(ids, "sent"));
    const byId = new Map(seen.map((m) => [m.id, m]));
    expect(byId.get(given.json.id)?.subject).toBe("Your receipt");
    expect(byId.get(fallback.json.id)?.subject).toBe("Short note");
    expect(byId.get(sms.json.id)).not.toHaveProperty("subject");
  });

  test("a send wakes an idle worker at once, without waiting for the poll", async () => {
    const provider = new ScriptedProvider("p1", (_n, id) => accepted(`p1-${id}`));
    const { dispatcher } = startDispatcher([provider], only("p1"), { pollMs: 60_000 });
    dispatcher.start();
    await Bun.sleep(100);
    const [id] = await send(1);
    dispatcher.wake();
    await until(allIn([id!], "sent"), 2000);
  });

  test("a failing first provider fails over to the next in the chain; the attempt log names both", async () => {
    const down = new ScriptedProvider("down", () => transientError("503", 503));
    const backup = new ScriptedProvider("backup", (_n, id) => accepted(`b-${id}`));
    const { dispatcher } = startDispatcher([down, backup], { sms: ["down", "backup"], mms: ["down"], email: ["down"] }, {}, [{}, {}]);
    const ids = await send(3);
    dispatcher.start();
    await until(allIn(ids, "sent"));
    const detail = await get(t.app, `/api/messages/${ids[0]}`);
    expect(detail.json.attempts.map((a: { provider: string; outcome: string }) => [a.provider, a.outcome])).toEqual([
      ["down", "transient_error"],
      ["backup", "accepted"],
    ]);
    expect(detail.json.attempts.map((a: { attempt: number }) => a.attempt)).toEqual([1, 2]);
  });

  test("a failover chain tries only the providers that own the message's sender; none left fails it at once", async () => {
    const first = new ScriptedProvider("p-owns-a", () => accepted("never"));
    const second = new ScriptedProvider("p-owns-b", (_n, id) => accepted(`b-${id}`));
    const { dispatcher } = startDispatcher([first, second], { sms: ["p-owns-a", "p-owns-b"], mms: ["p-owns-a"], email: ["p-owns-a"] }, {}, [
      { capacity: { senders: [{ kind: "phone", number: "+15550000001" }] } },
      { capacity: { senders: [{ kind: "phone", number: "+15550000002" }] } },
    ]);
    const owned = await post(t.app, "/api/messages/sms", smsSend({ from: "+1 555 000 0002" }));
    const orphan = await post(t.app, "/api/messages/sms", smsSend({ from: "+15550000009" }));
    dispatcher.start();
    await until(allIn([owned.json.id], "sent"));
    await until(allIn([orphan.json.id], "failed"));
    expect(first.calls).toEqual([]);
    expect(second.calls.map((c) => c.id)).toEqual([owned.json.id]);
    const [row] = await t.database.sql.query<{ reason: string }>("SELECT status_reason AS reason FROM messages WHERE id = $1", [orphan.json.id]);
    expect(row!.reason).toStartWith("sender_not_allowed");
  });

  test("a permanent error fails the message at once with the provider's reason", async () => {
    const provider = new ScriptedProvider("p1", () => permanentError("invalid number", 400));
    const { dispatcher } = startDispatcher([provider], only("p1"));
    const ids = await send(2);
    dispatcher.start();
    await until(allIn(ids, "failed"));
    expect(provider.calls).toHaveLength(2);
    const [row] = await t.database.sql.query<{ status_reason: string }>("SELECT status_reason FROM messages WHERE id = $1", [ids[0]]);
    expect(row!.status_reason).toBe("invalid number");
  });

  test("transient errors are retried until accepted, with one attempt row per call", async () => {
    const provider = new ScriptedProvider("p1", (n, id) => (n < 4 ? transientError("timeout") : accepted(`p1-${id}`)));
    const { dispatcher } = startDispatcher([provider], only("p1"), { breaker: { failureThreshold: 1000, openMs: 1000 } });
    const ids = await send(5);
    dispatcher.start();
    await until(allIn(ids, "sent"));
    for (const id of ids) {
      const detail = await get(t.app, `/api/messages/${id}`);
      expect(detail.json.attempts.map((a: { attempt: number }) => a.attempt)).toEqual([1, 2, 3, 4]);
      expect(detail.json.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(["transient_error", "transient_error", "transient_error", "accepted"]);
    }
  });

  test("after the maximum number of attempts the message fails with the last reason", async () => {
    const provider = new ScriptedProvider("p1", () => transientError("upstream 502", 502));
    const { dispatcher } = startDispatcher([provider], only("p1"), { maxAttempts: 3, breaker: { failureThreshold: 1000, openMs: 1000 } });
    const ids = await send(2);
    dispatcher.start();
    await until(allIn(ids, "failed"));
    expect(provider.calls).toHaveLength(6);
    const [row] = await t.database.sql.query<{ status_reason: string }>("SELECT status_reason FROM messages WHERE id = $1", [ids[0]]);
    expect(row!.status_reason).toBe("gave up after 3 attempts: upstream 502");
  });

  test("a message older than the maximum age fails without another call", async () => {
    const provider = new ScriptedProvider("p1", (_n, id) => accepted(id));
    const { dispatcher } = startDispatcher([provider], only("p1"), { maxAgeMs: 1 });
    const ids = await send(1);
    await Bun.sleep(5);
    dispatcher.start();
    await until(allIn(ids, "failed"));
    expect(provider.calls).toHaveLength(0);
  });

  test("a rate-limited answer is retried no sooner than its Retry-After", async () => {
    const provider = new ScriptedProvider("p1", (n, id) => (n === 1 ? rateLimited(400) : accepted(id)));
    const { dispatcher } = startDispatcher([provider], only("p1"));
    const ids = await send(1);
    dispatcher.start();
    await until(allIn(ids, "sent"));
    const [first, second] = provider.calls;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(390);
  });

  test("a job whose lease ran out is claimed again, retried with the same key and counted as uncertain", async () => {
    const ids = await send(4);
    // A worker that claims and then dies: its lease runs out after 300 ms.
    const dead = await claimJobs(t.database.sql, { holder: "dead-worker", limit: 100, leaseMs: 300, takeoverMs: 5000 });
    expect(dead.jobs.map((j) => j.id).sort()).toEqual([...ids].sort());
    expect(await statuses(ids)).toEqual({ sending: 4 });
    const provider = new ScriptedProvider("p1", (_n, id) => accepted(`p1-${id}`));
    const { dispatcher, metrics } = startDispatcher([provider], only("p1"));
    dispatcher.start();
    await Bun.sleep(150);
    expect(provider.calls).toHaveLength(0);
    await until(allIn(ids, "sent"));
    expect(provider.calls.map((c) => c.key).sort()).toEqual(ids.map((id) => `messaging-msg-${id}`).sort());
    expect(metricValue(await metrics.registry.metrics(), "messaging_delivery_uncertain_total")).toBe(4);
  });

  test("stop lets calls in flight finish, then aborts the rest and gives their jobs back, due at once", async () => {
    const provider = new ScriptedProvider("p1", (_n, _id, signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))));
    const { dispatcher } = startDispatcher([provider], only("p1"));
    const ids = await send(3);
    dispatcher.start();
    await until(async () => provider.calls.length === 3);
    const began = Date.now();
    await dispatcher.stop(200);
    running = undefined;
    expect(Date.now() - began).toBeLessThan(3000);
    const jobs = await t.database.sql.query<{ locked_by: string | null; due: boolean; attempts: number }>(
      "SELECT locked_by, run_at <= now() AS due, attempts FROM messages WHERE run_at IS NOT NULL AND id = ANY($1::bigint[])",
      [`{${ids.join(",")}}`],
    );
    expect(jobs).toHaveLength(3);
    for (const job of jobs) expect(job).toEqual({ locked_by: null, due: true, attempts: 1 });
  });

  test("a paced provider is called no faster than its rate", async () => {
    const provider = new ScriptedProvider("slow", (_n, id) => accepted(id));
    const { dispatcher } = startDispatcher([provider], only("slow"), {}, [{ maxPerSecond: 10 }]);
    const ids = await send(25);
    dispatcher.start();
    await Bun.sleep(1000);
    // A burst of one second's worth, then 10 a second.
    expect(provider.calls.length).toBeGreaterThanOrEqual(12);
    expect(provider.calls.length).toBeLessThanOrEqual(21);
    await until(allIn(ids, "sent"));
  });

  test("at 100% errors the breaker lets at most threshold + 1 calls out per open period, then recovers", async () => {
    let healthy = false;
    const provider = new ScriptedProvider("p1", (_n, id) => (healthy ? accepted(id) : transientError("503", 503)));
    const { dispatcher, metrics } = startDispatcher([provider], only("p1"), {
      breaker: { failureThreshold: 3, openMs: 400 },
      backoff: { baseMs: 10, capMs: 50 },
      maxAttempts: 1000,
    });
    const ids = await send(40);
    dispatcher.start();
    await Bun.sleep(1000);
    // Three failures open it; each 400 ms cool-down ends with one probe: at most 4 + 2 calls in one second.
    expect(provider.calls.length).toBeGreaterThanOrEqual(4);
    expect(provider.calls.length).toBeLessThanOrEqual(3 + 1 + 2);
    expect(dispatcher.breakerState("p1")).not.toBe("closed");
    healthy = true;
    await until(allIn(ids, "sent"));
    expect(dispatcher.breakerState("p1")).toBe("closed");
    const text = await metrics.registry.metrics();
    expect(metricValue(text, "messaging_breaker_transitions_total", { provider: "p1", to: "open" })).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, "messaging_breaker_transitions_total", { provider: "p1", to: "closed" })).toBe(1);
    expect(metricValue(text, "messaging_breaker_state", { provider: "p1" })).toBe(0);
  });

  test("an adapter that throws or answers garbage never stops a worker nor loses a job", async () => {
    let n = 0;
    const provider = new ScriptedProvider("p1", (_c, id) => {
      n += 1;
      if (n % 3 === 1) throw new Error("adapter bug");
      if (n % 3 === 2) return { kind: "what" } as unknown as ProviderOutcome;
      return accepted(id);
    });
    const { dispatcher } = startDispatcher([provider], only("p1"), { breaker: { failureThreshold: 1000, openMs: 1000 } });
    const ids = await send(6);
    dispatcher.start();
    await until(allIn(ids, "sent"));
  });

  test("the queue depth and the oldest due job show in /metrics", async () => {
    const provider = new ScriptedProvider("p1", () => transientError("down"));
    const { dispatcher, metrics } = startDispatcher([provider], only("p1"), { workers: 0, sampleMs: 50 });
    await send(3);
    await Bun.sleep(50);
    dispatcher.start();
    await until(async () => metricValue(await metrics.registry.metrics(), "messaging_delivery_queue_depth") === 3);
    expect(metricValue(await metrics.registry.metrics(), "messaging_delivery_oldest_due_seconds")).toBeGreaterThan(0);
  });
});
