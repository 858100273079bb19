import type { SQL } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { pgliteRunner, postgresRunner, type SqlRunner } from "./runner.ts";
import * as schema from "./schema.ts";
import { deadlineSockets } from "./statement-deadline.ts";
import { observeStatements, type StatementActivity } from "./statement-activity.ts";
import { inProcessWriteFence, postgresWriteFence, type WriteFence } from "./write-fence.ts";

/** The drizzle database every repository receives; the same for PostgreSQL and the embedded PGlite. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface DatabaseHandle {
  db: Database;
  /** Raw, prepared SQL for the hot path and what drizzle cannot express (see runner.ts). */
  sql: SqlRunner;
  kind: "postgres" | "embedded";
  /** Learns whether a write whose connection was lost committed (see write-fence.ts). */
  fence: WriteFence;
  /** Human description without secrets, for logs and `check`. */
  describe: string;
  /**
   * PostgreSQL only (the embedded database has one process, which wakes its own workers): LISTEN on a channel
   * over a dedicated connection, re-established by postgres.js after a reconnect; NOTIFY on it.
   */
  pubsub?: {
    listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
    notify(channel: string): Promise<void>;
  };
  /**
   * PostgreSQL only: a connection of its own (a pool of one, reconnected by postgres.js when it drops), for
   * what lives with a session: the delivery worker's advisory lock (delivery/liveness.ts).
   */
  session?: () => { sql: SqlRunner; close(): Promise<void> };
  /**
   * Embedded only: the statements this process runs, as they settle (statement-activity.ts), so that a loop
   * waiting for others' writes sleeps until one happens instead of polling.
   */
  activity?: StatementActivity;
  close(): Promise<void>;
}

/**
 * How often a loop that waits for other writers' changes looks anyway on the embedded database. One process owns
 * it, so every change there is this process's own and wakes such a loop at once (the promoter's timer for a
 * scheduled send, the event router's statement activity, the credential store's reload by its in-process
 * writers); the look is only a backstop, and an idle server should not spend a statement, and a wake of the event
 * router, on it every second or two.
 */
export const EMBEDDED_BACKSTOP_POLL_MS = 30_000;

export interface DatabaseOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  poolSize: number;
  /** PostgreSQL only. Default: a 5 s connect timeout and no statement bound (what `migrate` wants). */
  timeouts?: Partial<PostgresTimeouts>;
}

/**
 * How long PostgreSQL may take before a request gives up with 503 instead of waiting. All in milliseconds;
 * 0 turns the statement and idle-in-transaction bounds off.
 */
export interface PostgresTimeouts {
  connectMs: number;
  /** Enforced by the server (statement_timeout) and, a little later, by the client (statement-deadline.ts). */
  statementMs: number;
  /** idle_in_transaction_session_timeout: a client that vanished mid-transaction releases its locks. */
  idleInTransactionMs: number;
  /** After a lost connection, how long a write may spend learning whether it committed (write-fence.ts). */
  writeOutcomeMs: number;
}

const DEFAULT_TIMEOUTS: PostgresTimeouts = { connectMs: 5000, statementMs: 0, idleInTransactionMs: 0, writeOutcomeMs: 5000 };

/** The timeouts `serve` uses, from the configuration. */
export function configuredTimeouts(config: {
  databaseConnectTimeoutMs: number;
  databaseStatementTimeoutMs: number;
  databaseIdleInTransactionTimeoutMs: number;
  writeOutcomeTimeoutMs: number;
}): PostgresTimeouts {
  return {
    writeOutcomeMs: config.writeOutcomeTimeoutMs,
    connectMs: config.databaseConnectTimeoutMs,
    statementMs: config.databaseStatementTimeoutMs,
    idleInTransactionMs: config.databaseIdleInTransactionTimeoutMs,
  };
}

/**
 * How long the client waits for an answer before it closes the connection: past the server's own
 * statement_timeout, so a statement that is merely slow gets the server's clean cancellation (57014) and
 * only a connection that lost its way (partition, dead peer) is cut.
 */
export const clientDeadlineMs = (statementMs: number) => statementMs + Math.min(1000, Math.ceil(statementMs / 4));

/**
 * Opens PostgreSQL when a URL is given, else the embedded database persisted in `dataDir`. PGlite (its
 * JavaScript, and through it the WebAssembly and file-system bundle embedded in the binary), drizzle's PGlite
 * driver and the data-directory lock are imported only on the embedded path, so a PostgreSQL deployment never
 * loads them.
 */
export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  if (options.databaseUrl) return openPostgres(options.databaseUrl, options.poolSize, options.timeouts);
  const [{ lockDataDir }, { asDataDirError }, { closeEmbeddedDatabase, openEmbeddedDatabase }, { drizzle: drizzlePglite }] = await Promise.all([
    import("./data-dir-lock.ts"),
    import("./data-dir-error.ts"),
    import("./embedded.ts"),
    import("drizzle-orm/pglite"),
  ]);
  const unlock = lockDataDir(options.dataDir);
  try {
    const pglite = await openEmbeddedDatabase(options.dataDir);
    const activity = observeStatements(pglite);
    return {
      db: drizzlePglite(pglite, { schema }) as unknown as Database,
      sql: pgliteRunner(pglite),
      kind: "embedded",
      activity,
      fence: inProcessWriteFence,
      describe: `embedded PostgreSQL in ${options.dataDir}`,
      close: async () => {
        await closeEmbeddedDatabase(pglite);
        unlock();
      },
    };
  } catch (err) {
    unlock();
    // A file-system refusal while PGlite sets up or opens its files (a full disk during initdb, say) is the
    // directory's fault, not a crash: one line, like the lock's.
    throw asDataDirError(options.dataDir, "cannot be used", err);
  }
}

export function openPostgres(url: string, poolSize: number, bounds: Partial<PostgresTimeouts> = {}): DatabaseHandle {
  const timeouts = { ...DEFAULT_TIMEOUTS, ...bounds };
  const serverTimeouts: Record<string, number> = {};
  if (timeouts.statementMs > 0) serverTimeouts.statement_timeout = timeouts.statementMs;
  if (timeouts.idleInTransactionMs > 0) serverTimeouts.idle_in_transaction_session_timeout = timeouts.idleInTransactionMs;
  // The client-side deadline needs to see the protocol on a plain socket; with TLS, postgres.js wraps its own
  // socket and only the server-side bounds apply.
  const tls = isTls(url);
  const connect = (max: number, name: string) =>
    postgres(url, {
      max,
      prepare: true,
      onnotice: () => {},
      // postgres.js takes seconds; fractions work (its timer multiplies by 1000).
      connect_timeout: timeouts.connectMs / 1000,
      backoff: reconnectBackoffSecs,
      connection: { application_name: name, ...serverTimeouts },
      ...(timeouts.statementMs > 0 && !tls ? { socket: deadlineSockets(clientDeadlineMs(timeouts.statementMs)) } : {}),
    });
  const client = connect(poolSize, "messaging");
  const target = new URL(url);
  return {
    db: drizzlePostgres(client, { schema }) as unknown as Database,
    sql: postgresRunner(client),
    kind: "postgres",
    fence: postgresWriteFence(url, timeouts.writeOutcomeMs),
    describe: `PostgreSQL at ${target.hostname}:${target.port || 5432}${target.pathname}`,
    pubsub: {
      listen: async (channel, onNotify) => (await client.listen(channel, () => onNotify())).unlisten,
      notify: async (channel) => {
        await client.notify(channel, "");
      },
    },
    session: () => {
      const own = connect(1, "messaging-worker");
      return { sql: postgresRunner(own), close: () => own.end({ timeout: 1 }) };
    },
    close: () => client.end({ timeout: 5 }),
  };
}

/** Longest wait, in seconds, before a pool connection tries again after its last attempt failed. */
const RECONNECT_CAP_SECS = 0.25;

/**
 * Seconds a pool connection waits before reconnecting after a failure. postgres.js's default grows as
 * 3^retries / 100 up to 20 s, and `retries` is shared by the whole pool, so a few seconds of outage with twenty
 * connections failing put the next attempt 10–20 s away: requests queued for a connection were answered up to
 * 17 s after the database was back, and /readyz stayed 503 for seconds (issue 20). Capped at a quarter of a second,
 * a restored database is used within that; a down one costs each connection at most four refused attempts a
 * second, and only while queries wait for it (postgres.js connects on demand).
 */
export function reconnectBackoffSecs(retries: number): number {
  return Math.min(0.01 * 2 ** Math.min(retries, 10), RECONNECT_CAP_SECS) * (0.5 + Math.random() / 2);
}

/** True when the URL asks for TLS (`sslmode` or `ssl` other than disable/false). */
function isTls(url: string): boolean {
  const params = new URL(url).searchParams;
  const mode = (params.get("sslmode") ?? params.get("ssl") ?? "disable").toLowerCase();
  return !["disable", "false", "0", ""].includes(mode);
}

/** Rows of a raw `db.execute`, whose result is an array under postgres.js and `{ rows }` under PGlite. */
export async function queryRows<T>(db: Pick<Database, "execute">, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown;
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}
