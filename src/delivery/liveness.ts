/**
 * Whether a delivery worker is alive, proved rather than guessed from a lease (issues 19 and 20).
 *
 * Each dispatcher is one worker with an id (`delivery_workers.id`, the `locked_by` of its claims). On a
 * connection of its own it holds a session-level advisory lock (class WORKER_LOCK_CLASS, key `lock_key`) and,
 * every `heartbeatMs`, writes `seen_at` (and `connected_at` when its session is new). Another worker may take
 * over its claims only when all of these hold (the `dead` relation of CLAIM in jobs.ts):
 * - no session holds its lock: a process killed with -9, or whose session PostgreSQL ended, holds none; a live
 *   worker holds it however slow its provider calls are, so a long call is never handed to a second worker;
 * - it has not been seen for `takeoverMs`: a worker whose session dropped (a network cut, a PostgreSQL restart)
 *   reconnects, re-takes its lock and is seen again within the bound, keeping its claims and the outcomes it
 *   has not written yet;
 * - the worker taking over has itself been connected for `takeoverMs` since its last reconnect: after a cut that
 *   every worker saw, none takes over another until each had the bound to come back. A worker's first session
 *   (a process that just started) counts as watching already: it was not cut, so a restart after a kill -9
 *   takes over within the bound of the death, not of its own start.
 * So a dead worker's claims are free within `takeoverMs` plus one poll of its death. On the embedded database one
 * process owns the data directory, so the workers of a previous process are gone for certain: their claims are
 * free at start (`singleProcess`), and the heartbeat beats every 30 s instead of every second.
 */
import { hostname } from "node:os";
import type { SqlRunner } from "../db/runner.ts";
import type { Logger } from "../observability/logger.ts";

/** The advisory-lock class of delivery workers (two-key form: this class, the worker's `lock_key`). */
export const WORKER_LOCK_CLASS = 0x6d736777;

/**
 * A SQL condition: some session holds the lock of the worker row `w`. (pg_locks shows a two-key advisory lock
 * with the keys as classid/objid and objsubid 2.)
 */
export const workerLockHeldSql = (w: string) => `EXISTS (
  SELECT 1 FROM pg_locks l
   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid = ${WORKER_LOCK_CLASS}::oid
     AND l.objid = ${w}.lock_key::oid AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`;

/*
 * One round trip: take the lock if this session does not hold it yet (a new session after a reconnect), and
 * say so; write seen_at; a session that is not the one recorded starts a new connected_at.
 */
const HEARTBEAT = `
  WITH mine AS (
    SELECT EXISTS (SELECT 1 FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.pid = pg_backend_pid()
                      AND l.classid = ${WORKER_LOCK_CLASS}::oid AND l.objid = $2::int::oid) AS had),
  lock AS (SELECT had OR pg_try_advisory_lock(${WORKER_LOCK_CLASS}, $2::int) AS held FROM mine)
  INSERT INTO delivery_workers AS w (id, lock_key, backend_pid, connected_at, seen_at)
  VALUES ($1, $2, pg_backend_pid(), now() - $3::int * interval '1 millisecond', now())
  ON CONFLICT (id) DO UPDATE
     SET seen_at = now(), backend_pid = pg_backend_pid(),
         connected_at = CASE WHEN w.backend_pid = pg_backend_pid() THEN w.connected_at ELSE now() END
  RETURNING (SELECT held FROM lock) AS held`;

/** Workers gone for ten minutes leave the table (their claims were free long before). */
const FORGET_GONE = `
  DELETE FROM delivery_workers w
   WHERE w.seen_at < now() - interval '10 minutes' AND NOT ${workerLockHeldSql("w")}`;

/** Embedded start: every other worker belonged to a process that is gone; this one needs no bound to watch. */
const SOLE_PROCESS = `
  UPDATE delivery_workers
     SET seen_at = CASE WHEN id = $1 THEN seen_at ELSE '-infinity' END,
         connected_at = CASE WHEN id = $1 THEN '-infinity' ELSE connected_at END`;

/** How often a worker is seen: well within the takeover bound, so a live worker never looks gone. */
const HEARTBEAT_MS = 1000;
/**
 * On the embedded database nobody else takes over this worker's claims (CLAIM skips its own worker, and no other
 * process can open the data directory), so `seen_at` only has to stay well within FORGET_GONE's ten minutes.
 */
const SINGLE_PROCESS_HEARTBEAT_MS = 30_000;

export interface LivenessOptions {
  /** The worker's id; default host/pid/random. */
  id?: string;
  /** How long a worker may go unseen, its lock free, before its claims are taken over. */
  takeoverMs: number;
  heartbeatMs?: number;
  /** The embedded database: this process is the only one, and earlier workers are gone. */
  singleProcess?: boolean;
}

export class WorkerLiveness {
  readonly id: string;
  readonly lockKey = 1 + Math.floor(Math.random() * 0x7ffffffe);
  private timer: ReturnType<typeof setInterval> | undefined;
  private beating: Promise<void> | undefined;
  private beats = 0;
  private connected = false;
  private lockHeld = false;

  constructor(
    private readonly sql: SqlRunner,
    private readonly logger: Logger,
    private readonly options: LivenessOptions,
    private readonly closeSession: () => Promise<void> = async () => {},
  ) {
    this.id = options.id ?? `${hostname()}/${process.pid}/${crypto.randomUUID().slice(0, 8)}`;
  }

  /** Registers the worker (retrying in the background when the database is down) and starts the heartbeat. */
  async start(): Promise<void> {
    await this.beat();
    if (this.options.singleProcess) await this.sql.query(SOLE_PROCESS, [this.id]).catch(() => {});
    const every = this.options.heartbeatMs ?? (this.options.singleProcess ? SINGLE_PROCESS_HEARTBEAT_MS : HEARTBEAT_MS);
    this.timer = setInterval(() => void this.beat(), every);
    this.timer.unref();
  }

  /** Whether this worker's session holds its lock (false while reconnecting). */
  get holdsLock(): boolean {
    return this.lockHeld;
  }

  private beat(): Promise<void> {
    if (this.beating) return this.beating;
    this.beating = this.beatOnce().finally(() => {
      this.beating = undefined;
    });
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    try {
      const [row] = await this.sql.query<{ held: boolean }>(HEARTBEAT, [this.id, this.lockKey, this.options.takeoverMs]);
      const held = row?.held === true;
      if (!this.connected) this.logger.info({ worker: this.id, lock_held: held }, "delivery worker registered; its claims are its own again");
      this.connected = true;
      this.lockHeld = held;
      if (++this.beats % 60 === 0) await this.sql.query(FORGET_GONE);
    } catch (err) {
      if (this.connected) {
        this.logger.warn({ err, worker: this.id }, "delivery worker lost its database session; its claims stay its own while it reconnects");
      }
      this.connected = false;
      this.lockHeld = false;
    }
  }

  /**
   * Stops the heartbeat and closes the session (freeing the lock). With no claim left (`holding` false) the row
   * goes too; otherwise it stays, so the claims left are taken over after the bound rather than a lease.
   */
  async stop(holding: boolean): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.beating;
    if (!holding) await this.sql.query("DELETE FROM delivery_workers WHERE id = $1", [this.id]).catch(() => {});
    await this.closeSession().catch(() => {});
  }
}
