import { isDatabaseUnavailable, isServerError } from "../../db/availability.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { inProcessWriteFence, type WriteFence, type WriteOutcome } from "../../db/write-fence.ts";
import { AppError } from "../../http/errors.ts";
import { insertMessage, insertOutboundBatch, type NewMessage, type StoredIds } from "./repository.ts";
import { writeOnce } from "./write.ts";

export interface SendBatcherOptions {
  /** Batches written at once; while they run, new sends wait and join the next batch. */
  maxInFlight: number;
  /**
   * Sends that must be waiting before a batch starts beside one already being written (default 1: at once). A
   * statement has a fixed cost (its plan, triggers, receipt and commit), so under load a second statement of a few
   * sends costs the database and this process more than those sends joining the batch after the one in flight;
   * parallel batches are for a queue deeper than one statement drains at a time.
   */
  parallelAfter?: number;
  /** Most sends in one statement. */
  maxBatch: number;
  /** Most sends waiting for a batch; past it a send is refused at once with 503 (default: unbounded). */
  maxQueued?: number;
  /** Learns whether a batch whose connection was lost committed (default: the in-process database's). */
  fence?: WriteFence;
  /** Told what the batcher does, for metrics. */
  observe?: {
    batch?(size: number): void;
    queued?(depth: number): void;
    refused?(): void;
    outcome?(state: WriteOutcome["state"]): void;
    /** The messages of a statement that committed, with what each caller is answered (null: refused, opt-out). */
    stored?(messages: readonly NewMessage[], ids: readonly Written[]): void;
  };
}

/** A stored send's ids, or null for a send refused because its recipient opted out (nothing stored). */
type Written = StoredIds | null;

interface Pending {
  message: NewMessage;
  resolve(ids: Written): void;
  reject(err: unknown): void;
}

/** 503 for a send that found the queue full: nothing was stored, and a retry shortly after is welcome. */
export const sendQueueFull = () =>
  new AppError("service_unavailable", "too many sends are waiting to be stored; nothing was stored, retry shortly", {
    headers: { "retry-after": "1" },
  });

/**
 * Group commit for unkeyed outbound sends. Under load the database commit is the limit, so sends that
 * arrive while earlier batches are being written share the next statement (one commit, one WAL flush).
 * There is no timer: an idle service writes a lone send at once, so batching adds no latency when there
 * is nothing to batch. While a batch is being written, another starts beside it only once `parallelAfter` sends
 * wait: below that, they are cheaper as the next batch. Every caller answers only after the statement holding its message commits, and with
 * the truth when its connection is lost (see `writeOnce`): the whole batch committed or none of it did.
 * Only when PostgreSQL itself refused the statement (a SQLSTATE, so nothing of it committed) are its sends
 * retried one by one, so that one bad message cannot fail its neighbours. The queue is bounded: past
 * `maxQueued` waiting sends a send is refused at once rather than left to wait out its client's timeout.
 * A send whose recipient opted out of its sender is answered null by the statement that checks it, while its
 * neighbours are stored.
 */
export class SendBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;
  private readonly fence: WriteFence;
  private readonly parallelAfter: number;

  constructor(
    private readonly sql: SqlRunner,
    private readonly options: SendBatcherOptions,
  ) {
    this.fence = options.fence ?? inProcessWriteFence;
    this.parallelAfter = Math.max(1, options.parallelAfter ?? 1);
  }

  submit(message: NewMessage): Promise<Written> {
    if (this.queue.length >= (this.options.maxQueued ?? Number.POSITIVE_INFINITY)) {
      this.options.observe?.refused?.();
      return Promise.reject(sendQueueFull());
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ message, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && this.inFlight < this.options.maxInFlight && (this.inFlight === 0 || this.queue.length >= this.parallelAfter)) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.options.observe?.batch?.(batch.length);
      this.inFlight++;
      let held = true;
      // A batch holds its place until its statement is answered (the next batch goes before its callers are
      // answered), or until its connection was lost: learning whether it committed (the fence) can take seconds,
      // during which the next batch may go.
      const release = () => {
        if (!held) return;
        held = false;
        this.inFlight--;
        this.pump();
      };
      this.write(batch, release).finally(release);
    }
    this.options.observe?.queued?.(this.queue.length);
  }

  /**
   * Writes a batch, then gives up its place (`release`, which starts the next batch) before answering its callers:
   * answering them runs each caller's continuation (its 202, its metrics) first, and under load that kept the
   * database waiting for the next statement for as long as answering a whole batch took.
   */
  private async write(batch: Pending[], release: () => void): Promise<void> {
    try {
      const messages = batch.map((p) => p.message);
      const ids = await this.writeOnce(messages, release);
      release();
      this.options.observe?.stored?.(messages, ids);
      batch.forEach((p, i) => p.resolve(ids[i] ?? null));
    } catch (err) {
      if (batch.length > 1 && isServerError(err) && !isDatabaseUnavailable(err)) {
        await Promise.all(
          batch.map((p) =>
            this.writeOnce([p.message]).then((ids) => {
              this.options.observe?.stored?.([p.message], ids);
              p.resolve(ids[0] ?? null);
            }, p.reject),
          ),
        );
        return;
      }
      release();
      for (const p of batch) p.reject(err);
    }
  }

  private writeOnce(messages: NewMessage[], onLost?: () => void): Promise<Written[]> {
    return writeOnce(
      this.fence,
      (state) => this.options.observe?.outcome?.(state),
      async (token) => (messages.length === 1 ? [await insertMessage(this.sql, messages[0]!, token)] : insertOutboundBatch(this.sql, messages, token)),
      (ids) => ids,
      onLost,
    );
  }
}
