/**
 * A database that has run out of space (the embedded one's file system full: ENOSPC; PostgreSQL's SQLSTATE class
 * 53, disk_full 53100, out_of_memory 53200, or "could not extend file"): writes fail until space returns, and
 * nothing is acknowledged that was not stored. The service answers such a failure 503 with Retry-After (never
 * 500), /readyz says "storage full", and one episode is one warning and one recovery line in the log, counted in
 * /metrics, however many requests and background loops hit it in between.
 *
 * Recovery needs no restart: while full, a probe that must allocate new space (a table created, given a row that
 * needs its own pages, and rolled back) runs at most once a second, from /readyz and from a timer, so the state
 * clears even when nothing polls and no traffic arrives (a load balancer stops sending to an unready instance).
 */
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { rootCauseMessage } from "./availability.ts";
import type { SqlRunner } from "./runner.ts";

/** SQLSTATEs of PostgreSQL's class 53 (insufficient resources) that mean storage, not connections (53300). */
const STORAGE_STATES = new Set(["53000", "53100", "53200", "53400"]);
const FILE_SYSTEM_CODES = new Set(["ENOSPC", "EDQUOT"]);
const STORAGE_MESSAGE = /could not extend file|no space left on device|disk quota exceeded/i;

/** True when an error, or one of its causes, says the database has no room to write. */
export function isStorageFull(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === "string" && (STORAGE_STATES.has(code) || FILE_SYSTEM_CODES.has(code))) return true;
    if (typeof message === "string" && STORAGE_MESSAGE.test(message)) return true;
  }
  return false;
}

/** Seconds a client is told to wait: space returns when an operator acts, not in a blink. */
export const STORAGE_RETRY_AFTER_SECS = 30;

/** How often, at most, the probe tries to allocate while storage is full. */
const PROBE_EVERY_MS = 1000;

/** Bytes the probe writes: incompressible, so its table and TOAST must grow by pages the file system must give. */
const PROBE_BYTES = 64 * 1024;

/**
 * Asks the database for new space and gives it back: a fresh table (its own files) gets one incompressible row
 * in a transaction that is then rolled back. Throws the storage error while there is no room.
 */
export async function probeStorage(sql: SqlRunner): Promise<void> {
  const rollback = new Error("storage probe: roll back");
  const table = `messaging_storage_probe_${crypto.randomUUID().replaceAll("-", "")}`;
  try {
    await sql.transaction(async (tx) => {
      await tx.query(`CREATE TABLE ${table} (b text)`);
      await tx.query(
        `INSERT INTO ${table} SELECT string_agg(md5(random()::text || g::text), '') FROM generate_series(1, $1::int) AS g`,
        [PROBE_BYTES / 32],
      );
      throw rollback;
    });
  } catch (err) {
    if (err !== rollback) throw err;
  }
}

export interface StorageHealthDeps {
  logger: Logger;
  metrics: Pick<Metrics, "storageFull" | "storageFullEpisodes">;
  /** Tries to allocate; rejects while storage is full (default: probeStorage on the service's database). */
  probe: () => Promise<void>;
  now?: () => number;
}

/** Whether the database is out of space, kept per process from the failures the service meets. */
export class StorageHealth {
  private fullSince: number | undefined;
  private lastProbe = 0;
  private probing: Promise<void> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly now: () => number;

  constructor(private readonly deps: StorageHealthDeps) {
    this.now = deps.now ?? Date.now;
  }

  get full(): boolean {
    return this.fullSince !== undefined;
  }

  /**
   * Tells the tracker about a failure. True when it was a storage failure: the first of an episode logs one
   * warning, counts the episode and starts the recovery probe; later ones only return true.
   */
  report(error: unknown): boolean {
    if (!isStorageFull(error)) return false;
    if (this.fullSince !== undefined) return true;
    this.fullSince = this.now();
    this.lastProbe = this.fullSince;
    this.deps.metrics.storageFull.set(1);
    this.deps.metrics.storageFullEpisodes.inc();
    this.deps.logger.warn(
      { reason: rootCauseMessage(error) },
      `the database is out of storage space: writes are answered 503 with Retry-After and /readyz says "storage full" until space returns`,
    );
    this.timer = setInterval(() => void this.recheck(), PROBE_EVERY_MS);
    this.timer.unref?.();
    return true;
  }

  /** While full, probes for space (at most once a second); resolves whether storage is still full. */
  async recheck(): Promise<boolean> {
    if (this.fullSince === undefined) return false;
    if (!this.probing && this.now() - this.lastProbe >= PROBE_EVERY_MS) {
      this.lastProbe = this.now();
      this.probing = this.deps
        .probe()
        .then(
          () => this.recovered(),
          () => {},
        )
        .finally(() => (this.probing = undefined));
    }
    await this.probing;
    return this.full;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private recovered(): void {
    if (this.fullSince === undefined) return;
    const seconds = Math.round((this.now() - this.fullSince) / 100) / 10;
    this.fullSince = undefined;
    this.stop();
    this.deps.metrics.storageFull.set(0);
    this.deps.logger.info({ full_for_s: seconds }, "the database has storage space again: writes are accepted");
  }
}

/**
 * The logger background loops get (delivery, scheduling, purges): a storage failure they meet goes to the tracker
 * (one line per episode) instead of a line every poll; everything else passes through unchanged.
 */
export function storageAwareLogger(logger: Logger, storage: StorageHealth): Logger {
  return new Proxy(logger, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property === "warn" || property === "error") {
        return (first: unknown, ...rest: unknown[]) => {
          const err = (first as { err?: unknown } | null)?.err;
          if (err !== undefined && storage.report(err)) return;
          return (value as (...args: unknown[]) => void).call(target, first, ...rest);
        };
      }
      if (property === "child") {
        return (...args: unknown[]) => storageAwareLogger((value as (...a: unknown[]) => Logger).apply(target, args), storage);
      }
      return value;
    },
  });
}
