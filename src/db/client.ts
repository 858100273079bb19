import type { SQL } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { lockDataDir } from "./data-dir-lock.ts";
import { closeEmbeddedDatabase, openEmbeddedDatabase } from "./embedded.ts";
import { pgliteRunner, postgresRunner, type SqlRunner } from "./runner.ts";
import * as schema from "./schema.ts";
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
  close(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  poolSize: number;
  /** Bound on learning a write's outcome after its connection was lost (default 5 s). */
  writeOutcomeTimeoutMs?: number | undefined;
}

/** Opens PostgreSQL when a URL is given, else the embedded database persisted in `dataDir`. */
export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  if (options.databaseUrl) return openPostgres(options.databaseUrl, options.poolSize, options);
  const unlock = lockDataDir(options.dataDir);
  try {
    const pglite = await openEmbeddedDatabase(options.dataDir);
    return {
      db: drizzlePglite(pglite, { schema }) as unknown as Database,
      sql: pgliteRunner(pglite),
      kind: "embedded",
      fence: inProcessWriteFence,
      describe: `embedded PostgreSQL in ${options.dataDir}`,
      close: async () => {
        await closeEmbeddedDatabase(pglite);
        unlock();
      },
    };
  } catch (err) {
    unlock();
    throw err;
  }
}

export function openPostgres(url: string, poolSize: number, options: Pick<DatabaseOptions, "writeOutcomeTimeoutMs"> = {}): DatabaseHandle {
  const client = postgres(url, {
    max: poolSize,
    prepare: true,
    onnotice: () => {},
    connect_timeout: 5,
    connection: { application_name: "messaging" },
  });
  const target = new URL(url);
  return {
    db: drizzlePostgres(client, { schema }) as unknown as Database,
    sql: postgresRunner(client),
    kind: "postgres",
    fence: postgresWriteFence(url, options.writeOutcomeTimeoutMs ?? 5000),
    describe: `PostgreSQL at ${target.hostname}:${target.port || 5432}${target.pathname}`,
    close: () => client.end({ timeout: 5 }),
  };
}

/** Rows of a raw `db.execute`, whose result is an array under postgres.js and `{ rows }` under PGlite. */
export async function queryRows<T>(db: Pick<Database, "execute">, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown;
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}
