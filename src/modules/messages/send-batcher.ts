import { isDatabaseUnavailable } from "../../db/availability.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { insertMessage, insertOutboundBatch, type NewMessage, type StoredIds } from "./repository.ts";

export interface SendBatcherOptions {
  /** Batches written at once; while they run, new sends wait and join the next batch. */
  maxInFlight: number;
  /** Most sends in one statement. */
  maxBatch: number;
  /** Told the size of every batch written (for the batch-size histogram). */
  onBatch?: (size: number) => void;
}

interface Pending {
  message: NewMessage;
  resolve(ids: StoredIds): void;
  reject(err: unknown): void;
}

/**
 * Group commit for unkeyed outbound sends. Under load the database commit is the limit, so sends that
 * arrive while earlier batches are being written share the next statement (one commit, one WAL flush).
 * There is no timer: an idle service writes a lone send at once, so batching adds no latency when there
 * is nothing to batch. Every caller still answers only after the statement holding its message commits.
 * If a batch fails for a reason other than an unreachable database, its sends are retried one by one so
 * that one bad message cannot fail its neighbours.
 */
export class SendBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;

  constructor(
    private readonly sql: SqlRunner,
    private readonly options: SendBatcherOptions,
  ) {}

  submit(message: NewMessage): Promise<StoredIds> {
    return new Promise((resolve, reject) => {
      this.queue.push({ message, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.options.onBatch?.(batch.length);
      this.inFlight++;
      this.write(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async write(batch: Pending[]): Promise<void> {
    try {
      const ids = batch.length === 1 ? [await insertMessage(this.sql, batch[0]!.message)] : await insertOutboundBatch(this.sql, batch.map((p) => p.message));
      batch.forEach((p, i) => p.resolve(ids[i]!));
    } catch (err) {
      if (batch.length === 1 || isDatabaseUnavailable(err)) {
        for (const p of batch) p.reject(err);
        return;
      }
      await Promise.all(batch.map((p) => insertMessage(this.sql, p.message).then(p.resolve, p.reject)));
    }
  }
}
