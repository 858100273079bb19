import type { PGlite, Transaction as PgliteTransaction } from "@electric-sql/pglite";
import type { Sql, TransactionSql } from "postgres";
import { DatabaseTimeoutError } from "./statement-deadline.ts";

/**
 * A minimal SQL port for the few statements drizzle cannot say well: the send path's single
 * data-modifying CTE (one round trip, a named prepared statement) and advisory locks.
 * Implemented once over postgres.js and once over PGlite; repositories never see which.
 */
export interface SqlRunner {
  query<T>(text: string, params?: unknown[]): Promise<T[]>;
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>;
}

type Param = Parameters<Sql["unsafe"]>[1] extends (infer P)[] | undefined ? P : never;

/** postgres.js: every statement is prepared once per connection and reused (`prepare: true`). */
export function postgresRunner(client: Sql | TransactionSql, onError?: (error: unknown) => void): SqlRunner {
  return {
    query: <T>(text: string, params: unknown[] = []) => {
      const pending = client.unsafe(text, params as Param[], { prepare: true }) as unknown as Promise<T[]>;
      return onError ? pending.catch((err: unknown) => (onError(err), Promise.reject(err))) : pending;
    },
    transaction: async <T>(fn: (tx: SqlRunner) => Promise<T>) => {
      if (!("begin" in client)) return fn(postgresRunner(client, onError));
      let deadline: DatabaseTimeoutError | undefined;
      const notice = (err: unknown) => {
        if (err instanceof DatabaseTimeoutError) deadline ??= err;
      };
      try {
        return (await (client as Sql).begin((tx) => fn(postgresRunner(tx, notice)))) as T;
      } catch (err) {
        // When the statement deadline closed the connection, postgres.js rejects the transaction with its own
        // CONNECTION_CLOSED; the deadline is the reason, and what the timeout counter needs to see.
        throw deadline ?? err;
      }
    },
  };
}

/** PGlite: one in-process connection, so its transactions are serialized by PGlite itself. */
export function pgliteRunner(db: PGlite | PgliteTransaction): SqlRunner {
  return {
    query: async <T>(text: string, params: unknown[] = []) => (await db.query<T>(text, params as unknown[])).rows,
    transaction: <T>(fn: (tx: SqlRunner) => Promise<T>) => {
      if (!("transaction" in db)) return fn(pgliteRunner(db));
      return db.transaction((tx) => fn(pgliteRunner(tx)));
    },
  };
}
