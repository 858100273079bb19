/**
 * Scheduled sends (SPEC §3 `send_at`) once they are stored: the promoter that hands due ones to the delivery
 * queue, and cancelling. The send itself (validation, the `scheduled` row, the per-sender charge and the opt-out
 * check at acceptance) is the messages module's; from the promoter on, a scheduled message is an ordinary
 * queued one, so delivery needs to know nothing about schedules.
 */
import type { SqlRunner } from "../../db/runner.ts";
import { isCancelable, type MessageStatus } from "../../domain/message-status.ts";
import { sendPair } from "../../domain/opt-out.ts";
import { AppError } from "../../http/errors.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { getMessage, type MessagesDeps, parseId } from "../messages/service.ts";
import { cancelOnce, countQueuedDue, countScheduled, currentStatus, lockDue, nextDueAt, type Promoted, promoteLocked } from "./repository.ts";

export interface PromoterDeps {
  sql: SqlRunner;
  metrics: Metrics;
  logger: Logger;
  /** Told when messages entered the delivery queue (wakes the workers here and, through NOTIFY, elsewhere). */
  onQueued: () => void;
}

export interface PromoterOptions {
  /** How often to look for due messages another instance scheduled (this one's own set a timer). */
  pollMs: number;
  /**
   * How often to look when no message is known to come due sooner, when longer than `pollMs`: on the embedded
   * database every scheduled send commits in this process and sets the timer (`scheduled`), so there is nobody
   * else to look for and an idle promoter need not query twice a second. A failed round still retries after `pollMs`.
   */
  idlePollMs?: number;
  /** Most messages per promoting statement. */
  batchSize: number;
  /** How often the gauge of waiting messages is refreshed. */
  sampleMs?: number;
  /** While the queue holds more than half a batch of due messages, how often to look again before handing over more. */
  paceMs?: number;
}

/**
 * Runs in every `serve` process. It sleeps until the nearest `send_at` it knows of (from the database after
 * each round, and from this instance's own scheduled sends as they commit), or at most `pollMs`, then moves
 * every due message into the delivery queue in batches. Instances share the work through `SKIP LOCKED`, a
 * restart loses nothing (the schedule is rows), and a batch is handed over only while the delivery queue holds
 * less than half a batch of due messages (anyone's): a backlog of 100,000 messages due in one second drains at
 * the rate delivery takes it, using the capacity fresh sends leave, and a fresh send finds at most about one
 * batch of it ahead rather than all of it.
 */
export class Promoter {
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeAt = Infinity;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private resolveSleep: (() => void) | undefined;
  /** The soonest `send_at` told by `scheduled` while a round ran (its queries may have missed it). */
  private toldDuring = Infinity;
  private stopSampler = () => {};
  /** Whether the last round handed messages over: only then can the queue hold a backlog of ours. */
  private handedOver = false;

  constructor(
    private readonly deps: PromoterDeps,
    private readonly options: PromoterOptions,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
    const sample = () =>
      countScheduled(this.deps.sql).then(
        (n) => this.deps.metrics.messagesScheduled.set(n),
        (err: unknown) => this.deps.logger.debug({ err }, "scheduled messages count failed"),
      );
    const timer = setInterval(sample, this.options.sampleMs ?? 5000);
    timer.unref();
    void sample();
    this.stopSampler = () => clearInterval(timer);
  }

  /** A send scheduled for `sendAt` committed here: wake then if that is sooner than planned. */
  scheduled(sendAt: Date): void {
    if (!this.resolveSleep) this.toldDuring = Math.min(this.toldDuring, sendAt.getTime());
    else if (sendAt.getTime() < this.wakeAt) this.sleepUntil(sendAt.getTime());
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopSampler();
    this.wake();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (this.running) {
      // A send told before this line committed before the queries below, which see it.
      this.toldDuring = Infinity;
      try {
        if (await this.paced()) continue;
        const promoted = await this.promoteBatch();
        if (promoted === this.options.batchSize) continue;
        const next = await nextDueAt(this.deps.sql);
        const poll = Date.now() + Math.max(this.options.pollMs, this.options.idlePollMs ?? 0);
        await this.sleep(next === null ? poll : Math.min(next, poll));
      } catch (err) {
        this.deps.logger.warn({ err }, "promoting due scheduled messages failed; trying again shortly");
        await this.sleep(Date.now() + this.options.pollMs);
      }
    }
  }

  /** True (after a short wait) while the queue still holds half a batch or more of due messages. */
  private async paced(): Promise<boolean> {
    if (!this.handedOver) return false;
    const half = Math.ceil(this.options.batchSize / 2);
    if ((await countQueuedDue(this.deps.sql, half)) < half) {
      this.handedOver = false;
      return false;
    }
    await this.sleep(Date.now() + (this.options.paceMs ?? 25));
    return true;
  }

  /** One transaction: lock due messages, take them off the schedule; returns how many it took. */
  private async promoteBatch(): Promise<number> {
    const { promoted, taken } = await this.deps.sql.transaction(async (tx) => {
      const due = await lockDue(tx, this.options.batchSize);
      const moved = await promoteLocked(tx, due, (m) => (m.channel === "email" ? null : sendPair(m.from, m.to)));
      return { promoted: moved, taken: due.length };
    });
    if (promoted.length > 0) this.report(promoted);
    return taken;
  }

  private report(promoted: readonly Promoted[]): void {
    const queued = promoted.filter((p) => p.status === "queued").map((p) => p.id);
    const failed = promoted.length - queued.length;
    if (queued.length > 0) {
      this.deps.metrics.scheduledPromoted.inc({ outcome: "queued" }, queued.length);
      this.deps.metrics.messagesStatus.inc({ status: "queued" }, queued.length);
      this.handedOver = true;
      this.deps.onQueued();
    }
    if (failed > 0) {
      this.deps.metrics.scheduledPromoted.inc({ outcome: "failed" }, failed);
      this.deps.metrics.messagesStatus.inc({ status: "failed" }, failed);
      this.deps.logger.info({ messages: failed }, "scheduled messages failed at their send_at: the recipient opted out meanwhile");
    }
  }

  private sleep(until: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      this.resolveSleep = resolve;
      this.sleepUntil(Math.min(until, this.toldDuring));
    });
  }

  private sleepUntil(at: number): void {
    if (!this.resolveSleep) return;
    clearTimeout(this.timer);
    this.wakeAt = at;
    this.timer = setTimeout(() => this.wake(), Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  private wake(): void {
    clearTimeout(this.timer);
    this.wakeAt = Infinity;
    const resolve = this.resolveSleep;
    this.resolveSleep = undefined;
    resolve?.();
  }
}

/** A cancel that lost to another statement at the same instant is decided again, at most this many times. */
const CANCEL_TRIES = 5;

export interface CancelDeps {
  sql: SqlRunner;
  metrics: Metrics;
  messages: MessagesDeps;
}

/**
 * `POST /api/messages/{id}/cancel` (SPEC §3). One statement decides (repository.ts `cancelOnce`): a scheduled
 * message, or a queued one no worker has claimed, becomes `canceled` and never reaches a provider; a claim that
 * won the row first makes the cancel find nothing to take, and the message goes out. The answer is the message
 * (200) when it is canceled now or was before; 409 `not_cancelable` with its status otherwise; 404 when unknown.
 * A statement that took nothing while the message is still `scheduled` or `queued` met a concurrent move (the
 * promoter queueing it after the statement's snapshot) and is run again, shortly, with a fresh snapshot, which
 * sees where it went.
 */
export async function cancelMessage(deps: CancelDeps, rawId: string) {
  const id = parseId(rawId);
  if (id === null) throw notFound(rawId);
  let status: MessageStatus | null = null;
  for (let tries = 1; tries <= CANCEL_TRIES; tries++) {
    const attempt = await cancelOnce(deps.sql, id);
    if (attempt.canceled) {
      deps.metrics.messagesCanceled.inc({ from: attempt.fromSchedule ? "scheduled" : "queued" });
      deps.metrics.messagesStatus.inc({ status: "canceled" });
      return getMessage(deps.messages, rawId);
    }
    status = attempt.before === null ? null : await currentStatus(deps.sql, id);
    if (status === null) throw notFound(rawId);
    if (!isCancelable(status)) break;
    await Bun.sleep(tries * 5);
  }
  if (status === "canceled") return getMessage(deps.messages, rawId);
  throw new AppError("not_cancelable", `message ${rawId} is ${status} and can no longer be canceled: a worker has it or it is final`, {
    status: status ?? "unknown",
  });
}

const notFound = (rawId: string) => new AppError("not_found", `message ${rawId} does not exist`);
