/**
 * The delivery workers of one process (SPEC §7, ARCHITECTURE "Deliver"). Each worker loops: claim a batch of
 * due jobs (jobs.ts), hand every message of it to its channel's provider chain concurrently, then write all
 * the results in one transaction. Workers wake when a send commits (in this process directly, from other
 * instances through LISTEN/NOTIFY) and otherwise poll.
 *
 * Guarantees, and their limits:
 * - A message is never lost: it leaves the queue (its `run_at` is cleared) only in the transaction that records
 *   its final status. A worker that dies mid-call leaves claimed jobs that another worker takes over once the dead one
 *   is proved gone (liveness.ts), within the takeover bound of its death.
 * - A known outcome is never thrown away: when the result of a provider call cannot be written (the database
 *   is unreachable), the worker keeps it and writes it again, with backoff, until it is written or the process
 *   stops; its claims stay its own meanwhile, even across a reconnect, so no other worker calls the provider
 *   again for that message. A graceful stop tries once more and logs and counts what it could not write.
 * - The provider is asked with the same idempotency key every time (providers/provider.ts). The one window
 *   left is a process that dies between a provider's answer and the write of it: its messages are taken over
 *   and sent again, counted in `messaging_delivery_uncertain_total`; a provider that honours keys (the mock)
 *   does not send twice, one that does not (Twilio) does.
 * - A message is checked against opt-outs when it is dispatched as well as when it was accepted: one whose
 *   recipient opted out meanwhile (a STOP after it was queued) ends `failed` with reason `recipient_opted_out`,
 *   and no provider is called.
 */
import { retryDelayMs } from "../domain/backoff.ts";
import type { BreakerOptions, BreakerResult, BreakerState } from "../domain/circuit-breaker.ts";
import type { Channel } from "../domain/channel.ts";
import { sendPair } from "../domain/opt-out.ts";
import type { SqlRunner } from "../db/runner.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { CallDeadlines, type ProviderOutcome, sendWithTimeout, UNMATCHABLE_ACCEPTANCE } from "../providers/provider.ts";
import { ProviderGuard } from "./guard.ts";
import { type Limiter, perSecond } from "../limits/limiter.ts";
import {
  type AttemptRecord,
  type ClaimedJob,
  claimJobs,
  type JobResult,
  queueSample,
  recordResults,
  releaseJobs,
  releaseClaims,
  type StatusMoves,
} from "./jobs.ts";
import { WorkerLiveness } from "./liveness.ts";
import type { ProviderRegistry } from "../providers/registry.ts";

export interface DispatcherOptions {
  /** Concurrent claim loops in this process. */
  workers: number;
  /** Most jobs one claim takes. */
  batchSize: number;
  /** How often an idle worker looks for due jobs without being woken. */
  pollMs: number;
  /** How long a claim holds a job; must outlast the slowest provider call (see `effectiveLeaseMs`). */
  leaseMs: number;
  maxAttempts: number;
  maxAgeMs: number;
  backoff: { baseMs: number; capMs: number };
  breaker: BreakerOptions;
  /** How long a worker may go unseen, its lock free, before its claims are taken over (liveness.ts). */
  takeoverMs?: number;
  /** The embedded database: one process, so claims of earlier processes are free at start. */
  singleProcess?: boolean;
  /** The worker's id in `messages.locked_by` (a claimed message) and `delivery_workers`. */
  holder?: string;
  random?: () => number;
  /** How often the queue depth and oldest due job are sampled for /metrics. */
  sampleMs?: number;
}

export interface DispatcherDeps {
  sql: SqlRunner;
  registry: ProviderRegistry;
  metrics: Metrics;
  logger: Logger;
  /** Runs before each claim: refreshes what providers read at dispatch time (the mock's stored config). */
  beforeClaim?: () => Promise<void>;
  /** The limiter shared by every instance (Redis): a provider's `max_per_second` then holds in total. */
  sharedLimiter?: Limiter;
  /** A connection of its own for the worker's advisory lock (PostgreSQL); without it the pool's is used. */
  session?: { sql: SqlRunner; close(): Promise<void> };
  /** A provider's breaker cool-down when it differs from the configured one (the mock's runtime config); else undefined. */
  breakerOpenMs?: (provider: string) => number | undefined;
}

/** The default takeover bound: a dead worker's claims are free within it (plus a poll) of its death. */
export const DEFAULT_TAKEOVER_MS = 5000;
/** The first wait before writing results again after a failed write; doubles up to RESULT_RETRY_MAX_MS. */
const RESULT_RETRY_FIRST_MS = 100;
const RESULT_RETRY_MAX_MS = 2000;

/** The reason a message whose recipient opted out after it was queued fails with (SPEC §4). */
export const OPTED_OUT_REASON = "recipient_opted_out";
/** Why a message fails when no provider of its route owns its sender any more (SPEC §3 sender_not_allowed). */
export const NO_PROVIDER_REASON = "sender_not_allowed: no provider of the route owns this sender or can carry the message";

const refusal = (job: ClaimedJob): Delivered => ({
  result: { messageId: job.id, end: "failed", reason: OPTED_OUT_REASON, calls: 0 },
  attempts: [],
});

const BREAKER_GAUGE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };

/** A provider's bucket in the shared limiter: `max_per_second` calls a second, in total across instances. */
const sharedBucket = (limiter: Limiter, provider: string, maxPerSecond: number) => () => limiter.take(`provider:${provider}`, perSecond(maxPerSecond));
/** After a short claim, how long a woken worker waits for more sends to commit before claiming them. */
const CLAIM_LINGER_MS = 5;
/** The longest idle wait between claims on the embedded database (see idleWait). */
const SINGLE_PROCESS_IDLE_MAX_MS = 4000;
/** Most results one write carries (its arrays are statement parameters). */
const RESULTS_PER_WRITE = 1000;

/** A finished delivery: what became of the job, and the calls it made. */
interface Delivered {
  result: JobResult;
  attempts: AttemptRecord[];
  /** Set once a write carrying it failed: that write may have committed, so the next one checks the attempt log. */
  mayRepeat?: boolean;
}
const CHANNELS: readonly Channel[] = ["sms", "mms", "email"];

/** The lease must outlast the slowest call of any provider (plus writing its result), or a slow call would be retried under it. */
export function effectiveLeaseMs(leaseMs: number, registry: ProviderRegistry): number {
  const slowest = Math.max(0, ...registry.all().map((p) => p.spec.timeoutMs));
  return Math.max(leaseMs, slowest * 2 + 5000);
}

export class Dispatcher {
  readonly holder: string;
  private readonly guards = new Map<string, ProviderGuard>();
  private readonly stopController = new AbortController();
  private readonly deadlines = new CallDeadlines(this.stopController.signal);
  private readonly leaseMs: number;
  private readonly random: () => number;
  private stopping = false;
  private loops: Promise<void>[] = [];
  private sleepers: (() => void)[] = [];
  /** The next idle wait (singleProcess: doubles while claims find nothing, back to `pollMs` on a wake). */
  private idleMs: number;
  /** singleProcess: a wake-up at each retry time this process wrote, keyed by its `pollMs` slot. */
  private readonly retryWakes = new Map<number, ReturnType<typeof setTimeout>>();
  private woken = false;
  private stopSampler = () => {};
  /** Jobs claimed by this process whose results are not written yet, for a clean release at shutdown. */
  private readonly held = new Set<string>();
  /** Jobs claimed and not yet written back (calls running, results waiting). */
  private inFlight = 0;
  private readonly maxInFlight: number;
  private readonly maxWriters: number;
  private capacityWaiters: (() => void)[] = [];
  private results: Delivered[] = [];
  private flushScheduled = false;
  private writing = 0;
  private readonly liveness: WorkerLiveness;
  private ready: Promise<void> = Promise.resolve();
  private readonly takeoverMs: number;
  /** Claims numbered in `locked_by` (`<holder>#<n>`). */
  private claimNumber = 0;
  /** Claims that failed after they may have committed: their jobs are given back before the next claim. */
  private lostClaims: string[] = [];
  /** Jobs whose outcome could not be written before the stop: they stay claimed, for a takeover. */
  private unwritten = 0;
  /** Set while writing is paused after a failed write. */
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private writeWaitMs = RESULT_RETRY_FIRST_MS;

  constructor(
    private readonly deps: DispatcherDeps,
    private readonly options: DispatcherOptions,
  ) {
    this.takeoverMs = options.takeoverMs ?? DEFAULT_TAKEOVER_MS;
    this.idleMs = options.pollMs;
    this.liveness = new WorkerLiveness(
      deps.session?.sql ?? deps.sql,
      deps.logger,
      { ...(options.holder !== undefined && { id: options.holder }), takeoverMs: this.takeoverMs, singleProcess: options.singleProcess ?? false },
      deps.session ? () => deps.session!.close() : undefined,
    );
    this.holder = this.liveness.id;
    this.leaseMs = effectiveLeaseMs(options.leaseMs, deps.registry);
    this.random = options.random ?? Math.random;
    this.maxInFlight = Math.max(1, options.workers) * options.batchSize;
    this.maxWriters = Math.max(1, options.workers);
    for (const { spec } of deps.registry.all()) {
      const guard = new ProviderGuard({
        ...options.breaker,
        ...(spec.maxPerSecond !== undefined ? { maxPerSecond: spec.maxPerSecond } : {}),
        ...(spec.maxPerSecond !== undefined && deps.sharedLimiter ? { sharedBucket: sharedBucket(deps.sharedLimiter, spec.name, spec.maxPerSecond) } : {}),
        ...(deps.breakerOpenMs ? { openMsNow: () => deps.breakerOpenMs!(spec.name) } : {}),
        onTransition: (to, from) => {
          deps.metrics.breakerState.set({ provider: spec.name }, BREAKER_GAUGE[to]);
          deps.metrics.breakerTransitions.inc({ provider: spec.name, to });
          const line = { provider: spec.name, from, to };
          if (to === "open") deps.logger.warn(line, "circuit breaker opened: provider calls paused");
          else deps.logger.info(line, `circuit breaker ${to === "closed" ? "closed" : "half-open: one probe"}`);
        },
      });
      deps.metrics.breakerState.set({ provider: spec.name }, 0);
      this.guards.set(spec.name, guard);
    }
  }

  start(): void {
    if (this.loops.length > 0 || this.stopping) return;
    this.ready = this.liveness.start();
    for (let i = 0; i < this.options.workers; i++) this.loops.push(this.loop());
    this.startSampler();
    this.deps.logger.info(
      { workers: this.options.workers, holder: this.holder, takeover_ms: this.takeoverMs },
      "delivery workers started",
    );
  }

  /** A send committed (here or in another instance): idle workers look for due jobs now. */
  wake(): void {
    this.woken = true;
    this.idleMs = this.options.pollMs;
    const sleepers = this.sleepers;
    this.sleepers = [];
    for (const wake of sleepers) wake();
  }

  /**
   * Stops claiming, lets provider calls in flight finish for up to `timeoutMs`, then aborts the rest, writes
   * within `graceMs` every result it has (an aborted call is due again at once, with the same idempotency key) and gives back
   * any job it still holds, so a restart delivers at once instead of waiting for leases to run out.
   */
  async stop(timeoutMs: number, graceMs = 1000): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.stopSampler();
      for (const timer of this.retryWakes.values()) clearTimeout(timer);
      this.retryWakes.clear();
      this.wake();
      for (const wake of this.capacityWaiters.splice(0)) wake();
      // Results waiting out a backoff get their last try now.
      if (this.retryTimer !== undefined) {
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        this.flush();
      }
    }
    const drained = Promise.all(this.loops).then(() => this.idle());
    const timer = (ms: number) => new Promise<false>((resolve) => setTimeout(() => resolve(false), ms).unref());
    if (!(await Promise.race([drained.then(() => true), timer(timeoutMs)]))) {
      this.stopController.abort();
      await Promise.race([drained, timer(graceMs)]);
    }
    let holding = this.unwritten > 0;
    if (this.held.size > 0) {
      const ids = [...this.held];
      await releaseJobs(this.deps.sql, this.holder, ids).catch((err: unknown) => {
        holding = true;
        this.deps.logger.warn({ err, jobs: ids.length }, "could not give back claimed jobs; they are taken over once this worker is gone");
      });
    }
    await this.liveness.stop(holding);
  }

  /** Resolves once nothing is in flight: every claimed job's result written (or its write failed). */
  private async idle(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.capacityWaiters.push(resolve));
  }

  /** The breaker state of a provider in this process (for tests and diagnostics). */
  breakerState(provider: string): BreakerState | undefined {
    return this.guards.get(provider)?.state;
  }

  /**
   * One claim loop. Claims are pipelined: a loop claims again as soon as it has capacity, without waiting for
   * the calls of its earlier batches, so one slow call never holds back the messages behind it. At most
   * `workers × batchSize` jobs are in flight in the process; an idle loop sleeps until woken or the poll.
   */
  private async loop(): Promise<void> {
    while (!this.stopping) {
      if (this.inFlight >= this.maxInFlight) {
        await new Promise<void>((resolve) => this.capacityWaiters.push(resolve));
        continue;
      }
      let jobs: ClaimedJob[];
      let limit: number;
      try {
        await this.ready;
        if (this.lostClaims.length > 0) {
          const lost = [...this.lostClaims];
          await releaseClaims(this.deps.sql, lost);
          this.lostClaims = this.lostClaims.filter((c) => !lost.includes(c));
        }
        this.woken = false;
        await this.deps.beforeClaim?.();
        const plan = this.claimPlan();
        if ("waitMs" in plan) {
          await this.sleep(plan.waitMs);
          continue;
        }
        limit = Math.min(plan.limit, this.maxInFlight - this.inFlight);
        const claim = `${this.holder}#${++this.claimNumber}`;
        let claimed: Awaited<ReturnType<typeof claimJobs>>;
        try {
          claimed = await claimJobs(this.deps.sql, { holder: this.holder, claim, leaseMs: this.leaseMs, takeoverMs: this.takeoverMs, ...plan, limit });
        } catch (err) {
          // The claim may have committed with its answer lost: its jobs would be ours and unknown to us.
          this.lostClaims.push(claim);
          throw err;
        }
        jobs = claimed.jobs;
        for (const job of jobs) this.held.add(job.id);
        this.inFlight += jobs.length;
        if (claimed.markedSending > 0) this.deps.metrics.messagesStatus.inc({ status: "sending" }, claimed.markedSending);
      } catch (err) {
        this.deps.logger.warn({ err }, "claiming delivery jobs failed; retrying after the poll interval");
        await this.sleep(this.options.pollMs);
        continue;
      }
      for (const job of jobs) {
        const delivering = job.optedOut ? Promise.resolve(refusal(job)) : this.deliver(job);
        void delivering
          .catch((err: unknown): Delivered => {
            this.deps.logger.error({ err, message_id: job.id }, "delivery failed unexpectedly; retrying the message");
            const runAt = new Date(Date.now() + this.options.backoff.baseMs);
            return { result: { messageId: job.id, end: "retry", runAt, reason: "internal error", calls: 0 }, attempts: [] };
          })
          .then((delivered) => this.enqueueResult(delivered));
      }
      // A short claim means nothing more is due right now. Under a stream of sends a wake-up comes with every
      // commit; lingering a moment before the next claim lets one claim carry a few milliseconds of sends
      // instead of one each (each claim and result write costs a round trip and a commit).
      if (jobs.length < limit) {
        await this.sleep(this.idleWait(jobs.length));
        if (!this.stopping) await Bun.sleep(CLAIM_LINGER_MS);
      }
    }
  }

  /** Results finished in the same turn of the event loop are written together. */
  private enqueueResult(delivered: Delivered): void {
    this.results.push(delivered);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /**
   * Writes pending results, at most `workers` writes at a time; results arriving meanwhile join the next one.
   * A write that fails puts its results back at the head of the queue and pauses all writing for a backoff
   * (100 ms doubling to 2 s), so an unreachable database gets one write per pause, not one per batch.
   */
  private flush(): void {
    if (this.retryTimer !== undefined) return;
    while (this.writing < this.maxWriters && this.results.length > 0) {
      const batch = this.results.splice(0, RESULTS_PER_WRITE);
      this.writing += 1;
      void this.record(batch).then((outcome) => {
        this.writing -= 1;
        if (outcome === "failed") {
          for (const d of batch) d.mayRepeat = true;
          this.results.unshift(...batch);
          this.retryTimer ??= setTimeout(() => {
            this.retryTimer = undefined;
            this.flush();
          }, this.writeWaitMs);
          this.writeWaitMs = Math.min(this.writeWaitMs * 2, RESULT_RETRY_MAX_MS);
          return;
        }
        if (outcome === "written") this.writeWaitMs = RESULT_RETRY_FIRST_MS;
        if (this.options.singleProcess) for (const d of batch) if (d.result.end === "retry") this.wakeAt(d.result.runAt.getTime());
        this.inFlight -= batch.length;
        for (const d of batch) this.held.delete(d.result.messageId);
        const waiting = this.capacityWaiters;
        this.capacityWaiters = [];
        for (const wake of waiting) wake();
        this.flush();
      });
    }
  }

  /**
   * How much to claim: a whole batch when no provider is paced; otherwise no more than the paced chains can
   * take right now, and only messages of channels that can take any.
   */
  private claimPlan(): { limit: number; channels?: Channel[] } | { waitMs: number } {
    const capacity = (channel: Channel) =>
      this.deps.registry.chain(channel).reduce((sum, p) => sum + this.guards.get(p.spec.name)!.capacity(), 0);
    const caps = CHANNELS.map((channel) => ({ channel, cap: capacity(channel) }));
    if (caps.every((c) => c.cap === Infinity)) return { limit: this.options.batchSize };
    const open = caps.filter((c) => c.cap >= 1);
    if (open.length === 0) {
      const waits = [...this.guards.values()].map((g) => g.msUntilToken()).filter((ms) => ms > 0);
      return { waitMs: Math.max(1, Math.min(this.options.pollMs, ...waits)) };
    }
    const limit = Math.min(this.options.batchSize, ...open.map((c) => c.cap));
    return { limit, channels: open.map((c) => c.channel) };
  }

  /** Walks one message along its chain: the first provider that accepts it takes it; a permanent error ends it. */
  private async deliver(job: ClaimedJob): Promise<Delivered> {
    const attempts: AttemptRecord[] = [];
    const startedAt = Date.now();
    if (job.uncertain) {
      this.deps.metrics.deliveryUncertain.inc();
      this.deps.logger.warn({ message_id: job.id }, "message taken over from a worker that died before writing its result; retrying with the same idempotency key");
    }
    if (startedAt - job.createdAt >= this.options.maxAgeMs) {
      return { result: { messageId: job.id, end: "failed", reason: `not delivered within ${Math.round(this.options.maxAgeMs / 1000)} s`, calls: 0 }, attempts };
    }
    // A scheduled message's first call: how late it goes out after its send_at (SPEC §3 wants p99 ≤ 2 s).
    if (job.sendAt !== null && job.attempts === 0 && !job.uncertain) {
      this.deps.metrics.scheduleDispatchLag.observe(Math.max(0, startedAt - job.sendAt) / 1000);
    }
    let reason: string | null = null;
    let retryAfterMs = 0;
    let earliest = Infinity;
    // Only the providers that own the sender (and fit the message) are tried. None left: the configuration changed
    // since the send was accepted (which checked it), and no retry will find one.
    const chain = this.deps.registry.chain(job.channel, job);
    if (chain.length === 0) {
      return { result: { messageId: job.id, end: "failed", reason: NO_PROVIDER_REASON, calls: 0 }, attempts };
    }
    for (const { spec, provider } of chain) {
      if (this.stopController.signal.aborted) break;
      const entry = await this.guards.get(spec.name)!.enter();
      if (!entry.allowed) {
        if (entry.retryAt !== undefined) earliest = Math.min(earliest, entry.retryAt);
        reason ??= `provider ${spec.name} is ${entry.refusal === "paced" ? "at its rate limit" : entry.refusal === "paused" ? "paused by its Retry-After" : "failing (circuit breaker open)"}`;
        continue;
      }
      const callStarted = new Date();
      const t0 = performance.now();
      const outcome = await sendWithTimeout(
        provider,
        {
          id: job.id,
          channel: job.channel,
          from: job.from,
          to: job.to,
          body: job.body,
          attachments: job.attachments,
          // An email stored before subjects were has none: the adapter then falls back on its own default.
          ...(job.subject !== null && { subject: job.subject }),
        },
        spec.timeoutMs,
        this.deadlines,
      );
      const durationMs = performance.now() - t0;
      entry.release(breakerResult(outcome), outcome.kind === "rate_limited" ? outcome.retryAfterMs : undefined);
      this.deps.metrics.deliveryAttempts.inc({ provider: spec.name, outcome: outcome.kind });
      this.deps.metrics.deliveryDuration.observe({ provider: spec.name }, durationMs / 1000);
      attempts.push({
        messageId: job.id,
        attempt: job.attempts + attempts.length + 1,
        provider: spec.name,
        outcome: outcome.kind,
        statusCode: "status" in outcome && outcome.status !== undefined ? outcome.status : null,
        error: outcome.kind !== "accepted" ? describe(outcome) : outcome.providerMessageId === null ? UNMATCHABLE_ACCEPTANCE : null,
        durationMs: Math.round(durationMs),
        startedAt: callStarted,
      });
      switch (outcome.kind) {
        case "accepted":
          if (outcome.providerMessageId === null) this.deps.metrics.unmatchableAcceptances.inc({ provider: spec.name });
          return {
            result: { messageId: job.id, end: "sent", provider: spec.name, providerMessageId: outcome.providerMessageId, calls: attempts.length },
            attempts,
          };
        case "permanent_error": {
          const failed: JobResult = { messageId: job.id, end: "failed", reason: describe(outcome), calls: attempts.length };
          // Only a text has a sender a person can opt out of; an email adapter's flag would name no such pair.
          if (outcome.recipientOptedOut && job.channel !== "email") {
            failed.optOut = { pair: sendPair(job.from, job.to), reason: describe(outcome).slice(0, 200) };
          }
          return { result: failed, attempts };
        }
        case "rate_limited":
          retryAfterMs = Math.max(retryAfterMs, outcome.retryAfterMs ?? 1000);
          reason = describe(outcome);
          break;
        case "transient_error":
          reason = describe(outcome);
          break;
      }
    }
    const now = Date.now();
    const calls = attempts.length;
    if (this.stopController.signal.aborted) {
      // Shutting down: due again at once, for whichever instance runs next.
      return { result: { messageId: job.id, end: "retry", runAt: new Date(now), reason, calls }, attempts };
    }
    const total = job.attempts + calls;
    if (calls > 0 && total >= this.options.maxAttempts) {
      return { result: { messageId: job.id, end: "failed", reason: `gave up after ${total} attempts: ${reason}`, calls }, attempts };
    }
    const wait = Math.max(retryAfterMs, earliest === Infinity ? 0 : earliest - now);
    const delay =
      calls === 0 && earliest !== Infinity
        ? wait + Math.floor(this.random() * Math.min(1000, this.options.backoff.baseMs))
        : retryDelayMs(Math.max(1, total), { ...this.options.backoff, random: this.random, retryAfterMs: wait > 0 ? wait : null });
    return { result: { messageId: job.id, end: "retry", runAt: new Date(now + delay), reason, calls }, attempts };
  }

  /**
   * Writes a batch of results: "written", or "failed" (the caller keeps the outcomes and writes them again,
   * the claims staying this worker's, see liveness.ts), or, when the write failed while stopping (the last try),
   * "abandoned": logged and counted, the jobs left claimed for a takeover as uncertain.
   */
  private async record(delivered: Delivered[]): Promise<"written" | "failed" | "abandoned"> {
    const results = delivered.map((d) => d.result);
    const lastChance = this.stopping;
    let moved: StatusMoves[];
    try {
      moved = await recordResults(this.deps.sql, this.holder, delivered.flatMap((d) => d.attempts), results, {
        mayRepeat: delivered.some((d) => d.mayRepeat === true),
      });
    } catch (err) {
      this.deps.metrics.deliveryResultWriteFailures.inc();
      if (lastChance) {
        this.unwritten += results.length;
        this.deps.metrics.deliveryResultsUnwritten.inc(results.length);
        this.deps.logger.error(
          { err, jobs: results.length, message_ids: results.map((r) => r.messageId).slice(0, 20) },
          "delivery results could not be written before the stop; those messages are taken over as uncertain",
        );
        return "abandoned";
      }
      if (this.writeWaitMs === RESULT_RETRY_FIRST_MS) {
        this.deps.logger.warn({ err, jobs: results.length }, "writing delivery results failed; the outcomes are kept and written again");
      }
      return "failed";
    }
    this.countMoves(moved);
    const sent = results.filter((r) => r.end === "sent").length;
    if (sent > 0) this.deps.metrics.workerProcessed.inc(sent);
    for (const r of results) {
      if (r.end !== "failed") continue;
      this.deps.logger.info({ message_id: r.messageId, reason: r.reason }, "message failed");
      if (r.optOut) {
        this.deps.metrics.optOuts.inc({ action: "stop", source: "provider" });
        this.deps.logger.info({ message_id: r.messageId }, "the provider reports the recipient unsubscribed: opt-out recorded");
      }
    }
    return "written";
  }

  private countMoves(moved: readonly StatusMoves[]): void {
    for (const m of moved) this.deps.metrics.messagesStatus.inc({ status: m.status }, m.count);
  }

  /**
   * How long an idle loop sleeps before it claims again. Several instances share a PostgreSQL queue, so there it
   * is `pollMs` (their sends also NOTIFY). On the embedded database this process is the only writer: a send or a
   * promoted schedule wakes the loops, a retry this process wrote wakes them at its time (`wakeAt`, at most
   * `pollMs` late, as a poll would), so the wait doubles while claims find nothing, up to SINGLE_PROCESS_IDLE_MAX_MS,
   * the bound only for what nothing here wakes for (a status write that puts a message back in the queue, a
   * lease of a worker from before 0014 running out).
   */
  private idleWait(claimed: number): number {
    if (!this.options.singleProcess) return this.options.pollMs;
    if (claimed > 0) this.idleMs = this.options.pollMs;
    const ms = this.idleMs;
    this.idleMs = Math.min(this.idleMs * 2, Math.max(this.options.pollMs, SINGLE_PROCESS_IDLE_MAX_MS));
    return ms;
  }

  /** singleProcess: wake the loops at `at` (a retry's `run_at`, written), rounded up to the next `pollMs` slot. */
  private wakeAt(at: number): void {
    const slot = Math.ceil(at / this.options.pollMs);
    if (this.retryWakes.has(slot) || this.stopping) return;
    const timer = setTimeout(() => {
      this.retryWakes.delete(slot);
      this.wake();
    }, Math.max(0, slot * this.options.pollMs - Date.now()));
    timer.unref();
    this.retryWakes.set(slot, timer);
  }

  /** Waits until woken, stopped or `ms` passed; returns at once when a wake-up arrived since the last claim. */
  private sleep(ms: number): Promise<void> {
    if (this.woken || this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.sleepers.push(done);
    });
  }

  private startSampler(): void {
    const every = this.options.sampleMs ?? 5000;
    const sample = () =>
      queueSample(this.deps.sql).then(
        (s) => {
          this.deps.metrics.deliveryQueueDepth.set(s.depth);
          this.deps.metrics.deliveryOldestDue.set(s.oldestDueSeconds);
        },
        (err: unknown) => this.deps.logger.debug({ err }, "delivery queue sample failed"),
      );
    const timer = setInterval(sample, every);
    timer.unref();
    void sample();
    this.stopSampler = () => clearInterval(timer);
  }
}

/** A rate limit is not a failure of the provider (it answered); everything but an acceptance or a rate limit is. */
function breakerResult(outcome: ProviderOutcome): BreakerResult {
  switch (outcome.kind) {
    case "accepted":
      return "success";
    case "rate_limited":
      return "rate_limited";
    case "permanent_error":
      // The provider is up and judged this message; that says nothing against the provider.
      return "success";
    case "transient_error":
      return "failure";
  }
}

function describe(outcome: ProviderOutcome): string {
  switch (outcome.kind) {
    case "accepted":
      return outcome.providerMessageId === null ? UNMATCHABLE_ACCEPTANCE : `accepted as ${outcome.providerMessageId}`;
    case "rate_limited":
      return outcome.retryAfterMs === undefined ? "rate limited" : `rate limited (retry after ${outcome.retryAfterMs} ms)`;
    case "transient_error":
    case "permanent_error":
      return outcome.reason.slice(0, 500);
  }
}
