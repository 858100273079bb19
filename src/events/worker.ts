/**
 * The event workers of one process (SPEC §10): route new events to the endpoints that subscribe to them, claim
 * due deliveries under a lease, POST each one signed through the egress guard, and write the outcomes in
 * batches. They run beside the message dispatcher and share nothing with it but the database, so a slow or
 * dead endpoint never holds back a send; several instances share the queue through `SKIP LOCKED`.
 *
 * Per endpoint, in this process: at most `concurrency` POSTs at once, and a circuit breaker
 * (domain/circuit-breaker.ts) that stops POSTs to an endpoint failing in a row and lets one probe through after
 * the cool-down. Claims ask for no more than each endpoint can take now, so a hanging endpoint fills its own
 * slots and nobody else's.
 *
 * At-least-once: a delivery leaves the queue only in the statement that records its 2xx; a crash between the
 * POST and that statement sends it again once the lease runs out. Receivers deduplicate by the event id.
 */
import { hostname } from "node:os";
import { admit, type Breaker, type BreakerOptions, closedBreaker, record } from "../domain/circuit-breaker.ts";
import type { SqlRunner } from "../db/runner.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { CredentialLookup } from "../security/credential-lookup.ts";
import { type Egress, EgressRefusedError } from "../security/egress.ts";
import {
  type ClaimedDelivery,
  claimDeliveries,
  type DeliveryResult,
  endpointBacklog,
  feedHeldBackSeconds,
  nextDeliveryDue,
  purgeEventBatch,
  recordDeliveries,
  releaseDeliveries,
  routeEvents,
} from "./deliveries.ts";
import { SECRET_NAME, secretProvider } from "./endpoints.ts";
import { signEvent } from "./signing.ts";

export interface EventWorkerOptions {
  /** POST events in this process; false only routes them (another instance sends). */
  deliver: boolean;
  /** POSTs in flight per endpoint in this process. */
  concurrency: number;
  /** How long a POST may take before it counts as failed. */
  timeoutMs: number;
  /** How often an idle worker looks for new events. */
  pollMs: number;
  /**
   * With `activity` (one process owns the database): after a round that found nothing to route or send, the wait
   * is this instead of `pollMs` (or, with endpoints registered, until their next delivery falls due, when that is
   * sooner), cut short by the next statement of another caller (rounds stay at least `pollMs` apart).
   */
  idleMaxMs?: number;
  /** How long a delivery is retried after it was first due. */
  retryForMs: number;
  /** An endpoint whose deliveries have all failed this long is disabled. */
  disableAfterMs: number;
  backoff: { baseMs: number; capMs: number };
  breaker: BreakerOptions;
  /** Days events are kept for the feed (0: the purge does not run). */
  retentionDays: number;
  snippetLength: number;
  userAgent: string;
  holder?: string;
  random?: () => number;
  /** How often the per-endpoint backlog is sampled for /metrics. */
  sampleMs?: number;
}

export interface EventWorkerDeps {
  /** With `activity`, a runner whose statements are not reported there (the worker's own would wake it). */
  sql: SqlRunner;
  /** Every statement of this process (db/statement-activity.ts): one ends a worker's idle wait. */
  activity?: { subscribe(listener: () => void): () => void };
  credentials: CredentialLookup;
  egress: Pick<Egress, "request">;
  metrics: Metrics;
  logger: Logger;
}

interface Gate {
  url: string;
  breaker: Breaker;
  inFlight: number;
}

/** Most events one routing statement reads; a backlog is routed in steps of this. */
const ROUTE_BATCH = 2000;
/** How often the endpoint list is read again (new endpoints, changed URLs). */
const ENDPOINTS_REFRESH_MS = 2000;
const PURGE_BATCH = 5000;
const PURGE_EVERY_MS = 10 * 60_000;

export class EventWorkers {
  private readonly holder: string;
  private readonly random: () => number;
  private readonly gates = new Map<string, Gate>();
  private endpointsReadAt = 0;
  private routedAt = 0;
  /** The database's snapshot (`xmin:xmax:xips`) taken before the last routing round that left nothing behind. */
  private routedSnapshot: string | undefined;
  private stopping = false;
  private running: Promise<void> | undefined;
  private sleeper: (() => void) | undefined;
  private inFlight = 0;
  private readonly results: DeliveryResult[] = [];
  private flushScheduled = false;
  private writing: Promise<void> = Promise.resolve();
  private readonly idleWaiters: (() => void)[] = [];
  private readonly timers: ReturnType<typeof setInterval>[] = [];
  private readonly leaseMs: number;
  /** In the long wait of `idleMaxMs`, which a statement of another caller ends. */
  private waitingLong = false;
  /** The last wait was the long one: the statement that ended it may have registered the first endpoint. */
  private waitedLong = false;
  /** A statement of another caller settled since the current round began (it may have written events). */
  private activitySeen = false;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly deps: EventWorkerDeps,
    private readonly options: EventWorkerOptions,
  ) {
    this.holder = options.holder ?? `${hostname()}:${process.pid}:events`;
    this.random = options.random ?? Math.random;
    // A claim must outlast the POST it covers and the write of its outcome.
    this.leaseMs = 2 * options.timeoutMs + 5000;
  }

  start(): void {
    if (this.running || this.stopping) return;
    this.unsubscribe = this.deps.activity?.subscribe(() => this.activity());
    this.running = this.loop();
    const sample = () => void this.sample();
    this.timers.push(setInterval(sample, this.options.sampleMs ?? 5000));
    sample();
    if (this.options.retentionDays > 0) {
      const purge = () => void this.purge();
      this.timers.push(setInterval(purge, PURGE_EVERY_MS));
      purge();
    }
    for (const t of this.timers) t.unref();
  }

  /** Something may have written events: look now instead of at the next poll. */
  wake(): void {
    const wake = this.sleeper;
    this.sleeper = undefined;
    wake?.();
  }

  /** A statement of another caller settled: it ends the long idle wait; a short one runs its course. */
  private activity(): void {
    this.activitySeen = true;
    if (this.waitingLong) this.wake();
  }

  /** Stops claiming, waits up to `timeoutMs` for POSTs in flight, writes their outcomes and gives back the rest. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    for (const t of this.timers) clearInterval(t);
    this.wake();
    await this.running;
    const idle = new Promise<void>((resolve) => (this.inFlight === 0 ? resolve() : this.idleWaiters.push(resolve)));
    await Promise.race([idle, Bun.sleep(timeoutMs)]);
    await this.writing;
    await releaseDeliveries(this.deps.sql, this.holder).catch((err: unknown) =>
      this.deps.logger.warn({ err }, "could not give back claimed event deliveries; they are retried when their lease runs out"),
    );
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const started = Date.now();
      this.activitySeen = false;
      const afterLongWait = this.waitedLong;
      this.waitedLong = false;
      let busy = false;
      let quiet = false;
      let dueAt: number | null = null;
      try {
        const round = await this.step(afterLongWait);
        busy = round.more;
        quiet = round.quiet;
        dueAt = round.dueAt ?? null;
      } catch (err) {
        this.deps.logger.warn({ err }, "event routing or claiming failed; retrying after the poll interval");
      }
      if (busy || this.stopping) continue;
      const { pollMs, idleMaxMs } = this.options;
      // A statement of another caller during the round may have committed events after its snapshot: no long wait.
      if (!quiet || idleMaxMs === undefined || this.activitySeen) {
        await this.sleep(pollMs);
        continue;
      }
      this.waitingLong = true;
      await this.sleep(Math.max(pollMs, Math.min(idleMaxMs, dueAt === null ? Infinity : dueAt - Date.now())));
      this.waitingLong = false;
      this.waitedLong = true;
      const rest = started + pollMs - Date.now();
      if (rest > 0 && !this.stopping) await this.sleep(rest);
    }
  }

  /**
   * One round: route what is new, claim what the endpoints can take. `more` when there may be more at once;
   * `quiet` when it found nothing to do and nothing comes due before `dueAt` (when the next delivery of an endpoint
   * falls due; undefined: none) without a statement of some caller: no POST in flight, and no delivery due now
   * that could not be claimed (an endpoint's breaker, its secret not loaded yet, an earlier event held).
   */
  private async step(afterLongWait = false): Promise<{ more: boolean; quiet: boolean; dueAt?: number }> {
    // An answer wakes the loop to claim again; routing (a write) runs at most twice per poll interval meanwhile.
    let routed = { events: 0, deliveries: 0 };
    if (this.inFlight === 0 || Date.now() - this.routedAt >= this.options.pollMs / 2) {
      this.routedAt = Date.now();
      // Events are rows written by committed transactions: while the set of committed transactions is the one
      // the last round saw (the same snapshot), there is nothing new to route, and the round is skipped.
      const snapshot = await currentSnapshot(this.deps.sql);
      if (snapshot === undefined || snapshot !== this.routedSnapshot) {
        const step = await routeEvents(this.deps.sql, ROUTE_BATCH);
        for (const [type, n] of step.byType) this.deps.metrics.eventsWritten.inc({ type }, n);
        routed = step;
        this.routedSnapshot = step.events < ROUTE_BATCH ? snapshot : undefined;
      }
    }
    if (!this.options.deliver) return { more: routed.events === ROUTE_BATCH, quiet: routed.events === 0 };
    if (Date.now() - this.endpointsReadAt >= ENDPOINTS_REFRESH_MS || (afterLongWait && this.gates.size === 0)) await this.readEndpoints();
    const caps = this.capacities();
    const claimed = await claimDeliveries(this.deps.sql, caps, this.holder, this.leaseMs, this.options.snippetLength);
    if (claimed.length > 0) this.send(claimed);
    const full = claimed.length > 0 && claimed.length === [...caps.values()].reduce((a, b) => a + b, 0);
    const more = routed.events === ROUTE_BATCH || full;
    const idle = routed.events === 0 && claimed.length === 0 && this.inFlight === 0;
    if (!idle || this.gates.size === 0 || this.options.idleMaxMs === undefined) return { more, quiet: idle && this.gates.size === 0 };
    // Endpoints, nothing to send: only a retry comes due by the clock. One that is due already and was not claimed
    // waits on something else (a breaker's cool-down, a secret, a previous process's lease): poll as usual.
    const dueAt = await nextDeliveryDue(this.deps.sql);
    if (dueAt === null) return { more, quiet: true };
    return dueAt > Date.now() + this.options.pollMs ? { more, quiet: true, dueAt } : { more, quiet: false };
  }

  private async readEndpoints(): Promise<void> {
    const rows = await this.deps.sql.query<{ id: string; url: string }>("SELECT id::text AS id, url FROM event_endpoints WHERE disabled_at IS NULL");
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.id);
      const gate = this.gates.get(row.id);
      if (gate) gate.url = row.url;
      else this.gates.set(row.id, { url: row.url, breaker: closedBreaker, inFlight: 0 });
    }
    for (const id of this.gates.keys()) if (!seen.has(id)) this.gates.delete(id);
    this.endpointsReadAt = Date.now();
  }

  /** What each endpoint may take now: free slots while its breaker is closed, one probe after a cool-down. */
  private capacities(): Map<string, number> {
    const now = Date.now();
    const caps = new Map<string, number>();
    for (const [id, gate] of this.gates) {
      if (this.deps.credentials.verifying(secretProvider(id), SECRET_NAME).length === 0) continue; // its secret is not loaded yet
      const admission = admit(gate.breaker, now, this.options.breaker);
      if (!admission.allowed) continue;
      const free = this.options.concurrency - gate.inFlight;
      // Claim for a busy endpoint once half its slots are free, not at every answer: each claim is a round trip.
      if (gate.inFlight > 0 && free < Math.ceil(this.options.concurrency / 2)) continue;
      caps.set(id, gate.breaker.state === "closed" ? free : Math.min(1, free));
    }
    return caps;
  }

  private send(claimed: readonly ClaimedDelivery[]): void {
    for (const delivery of claimed) {
      const gate = this.gates.get(delivery.endpointId);
      const event = delivery.event;
      if (!gate || !event) {
        // Deleted or purged between the claim and now: nothing to send; the lease lets it go.
        this.enqueue({ ...failure(delivery, "the endpoint or event is gone"), retryAt: new Date() });
        continue;
      }
      const admission = admit(gate.breaker, Date.now(), this.options.breaker);
      gate.breaker = admission.next;
      gate.inFlight += 1;
      this.inFlight += 1;
      void this.post(delivery, gate, JSON.stringify(event), Date.parse(event.created_at)).then((result) => {
        gate.inFlight -= 1;
        this.inFlight -= 1;
        this.enqueue(result);
        if (this.inFlight === 0) for (const done of this.idleWaiters.splice(0)) done();
        this.wake();
      });
    }
  }

  /** One POST of one event, classified; never throws. */
  private async post(delivery: ClaimedDelivery, gate: Gate, body: string, createdAt: number): Promise<DeliveryResult> {
    const bytes = Buffer.from(body);
    let result: DeliveryResult;
    try {
      const secrets = this.deps.credentials.verifying(secretProvider(delivery.endpointId), SECRET_NAME);
      const signature = signEvent(secrets, bytes, Math.floor(Date.now() / 1000));
      const response = await this.deps.egress.request(gate.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": this.options.userAgent,
          "x-messaging-event-id": (JSON.parse(body) as { id: string }).id,
          "x-messaging-signature": signature,
        },
        body: bytes,
      });
      if (response.status >= 200 && response.status < 300) {
        result = { endpointId: delivery.endpointId, eventId: delivery.eventId, outcome: "delivered", statusCode: response.status, error: null, retryAt: null, giveUp: false };
        this.deps.metrics.eventDeliveryLag.observe(Math.max(0, Date.now() - createdAt) / 1000);
      } else if (response.status === 410) {
        result = { endpointId: delivery.endpointId, eventId: delivery.eventId, outcome: "gone", statusCode: 410, error: "410 Gone", retryAt: null, giveUp: false };
      } else {
        result = this.retry(delivery, `the endpoint answered ${response.status}`, response.status);
      }
    } catch (err) {
      const message = err instanceof EgressRefusedError ? `${err.reason}: ${err.message}` : String((err as Error)?.message ?? err);
      if (!(err instanceof EgressRefusedError)) this.deps.logger.warn({ err, endpoint_id: delivery.endpointId }, "an event POST failed unexpectedly");
      result = this.retry(delivery, message.slice(0, 300), null);
    }
    gate.breaker = record(gate.breaker, result.outcome === "failed" ? "failure" : "success", Date.now(), this.options.breaker).next;
    this.deps.metrics.eventDeliveries.inc({ outcome: result.giveUp ? "gave_up" : result.outcome });
    return result;
  }

  /** A failed try: due again after the backoff, or given up once the retry window has run out. */
  private retry(delivery: ClaimedDelivery, error: string, statusCode: number | null): DeliveryResult {
    const now = Date.now();
    const attempt = delivery.attempts + 1;
    const ceiling = Math.min(this.options.backoff.capMs, this.options.backoff.baseMs * 2 ** Math.min(attempt - 1, 40));
    // Half the ceiling always, the other half random: spread out, yet never an immediate retry.
    const delay = Math.ceil(ceiling / 2 + this.random() * (ceiling / 2));
    const giveUp = now + delay - delivery.firstAt > this.options.retryForMs;
    return { endpointId: delivery.endpointId, eventId: delivery.eventId, outcome: "failed", statusCode, error, retryAt: new Date(now + delay), giveUp };
  }

  private enqueue(result: DeliveryResult): void {
    this.results.push(result);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const batch = this.results.splice(0);
      this.writing = this.writing.then(() => this.write(batch));
    });
  }

  private async write(batch: DeliveryResult[]): Promise<void> {
    try {
      const disabled = await recordDeliveries(this.deps.sql, this.holder, batch, this.options.disableAfterMs);
      for (const d of disabled) {
        this.gates.delete(d.id);
        this.deps.logger.warn({ endpoint_id: d.id, reason: d.disabled_reason }, "event endpoint disabled; its events wait for POST /api/event-endpoints/{id}/enable");
      }
    } catch (err) {
      this.deps.logger.error({ err, deliveries: batch.length }, "writing event delivery outcomes failed; those events are sent again when their lease runs out");
    }
    // A retry written now may fall due before the end of a long wait begun while its claim still held it.
    if (this.waitingLong) this.wake();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self.sleeper === done) self.sleeper = undefined;
        resolve();
      }
      this.sleeper = done;
    });
  }

  private readonly sampledEndpoints = new Set<string>();

  private async sample(): Promise<void> {
    try {
      const backlog = await endpointBacklog(this.deps.sql);
      const now = new Set(backlog.map((b) => b.endpointId));
      for (const id of this.sampledEndpoints) {
        if (now.has(id)) continue;
        this.deps.metrics.eventPending.remove({ endpoint: id });
        this.deps.metrics.eventOldestPending.remove({ endpoint: id });
      }
      this.sampledEndpoints.clear();
      for (const b of backlog) {
        this.sampledEndpoints.add(b.endpointId);
        this.deps.metrics.eventPending.set({ endpoint: b.endpointId }, b.pending);
        this.deps.metrics.eventOldestPending.set({ endpoint: b.endpointId }, b.oldestSeconds);
      }
      this.deps.metrics.eventEndpointsDisabled.set(backlog.filter((b) => b.disabled).length);
      this.deps.metrics.eventFeedHeldBack.set(await feedHeldBackSeconds(this.deps.sql));
    } catch (err) {
      this.deps.logger.debug({ err }, "event backlog sample failed");
    }
  }

  private async purge(): Promise<void> {
    try {
      let total = 0;
      for (;;) {
        const n = await purgeEventBatch(this.deps.sql, this.options.retentionDays, PURGE_BATCH);
        total += n;
        if (n < PURGE_BATCH || this.stopping) break;
      }
      if (total > 0) {
        this.deps.metrics.retentionPurged.inc({ what: "events" }, total);
        this.deps.logger.info({ events: total, retention_days: this.options.retentionDays }, "events past retention purged");
      }
    } catch (err) {
      this.deps.logger.warn({ err }, "event purge failed");
    }
  }
}

/*
 * The transactions this snapshot counts as committed are exactly those below xmax and not in the list: any new
 * commit, or any new transaction that writes (it takes an xid), changes the text, on PostgreSQL (cluster-wide,
 * so other databases' writes count too: a wasted round, never a missed one) and on the embedded database alike.
 * A read-only statement takes no xid and leaves it as it is. One cheap read instead of the routing statement,
 * whose plan alone costs about 5 ms of CPU per round on the embedded database.
 */
async function currentSnapshot(sql: SqlRunner): Promise<string | undefined> {
  const [row] = await sql.query<{ s: string }>("SELECT pg_current_snapshot()::text AS s");
  return row?.s;
}

function failure(delivery: ClaimedDelivery, error: string): DeliveryResult {
  return { endpointId: delivery.endpointId, eventId: delivery.eventId, outcome: "failed", statusCode: null, error, retryAt: null, giveUp: false };
}
