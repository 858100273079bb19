import type { PGlite } from "@electric-sql/pglite";
import { pgliteRunner, type SqlRunner } from "./runner.ts";

/**
 * Every statement this process runs on the embedded database, told once it has settled. One process owns the
 * embedded data, so a loop that only waits for others' writes (the event router) can sleep long and be woken by
 * this instead of polling: nothing can commit there that did not pass through here.
 */
export interface StatementActivity {
  /** `listener` runs after each statement or transaction of anyone but `quietSql`'s callers; returns the unsubscribe. */
  subscribe(listener: () => void): () => void;
  /** The same database, unreported: a loop that wakes on activity runs its own statements here, or it would wake itself. */
  quietSql: SqlRunner;
}

/**
 * Wraps `query`, `exec` and `transaction` of this PGlite instance (drizzle and the SqlRunner call nothing else)
 * so that each top-level call reports once it settles; statements inside a transaction report with its end,
 * when what they wrote became visible.
 */
export function observeStatements(pglite: PGlite): StatementActivity {
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const listener of listeners) listener();
  };
  // The unwrapped methods, bound, on an object that otherwise reads through to the instance.
  const quiet = Object.create(pglite) as PGlite;
  for (const name of ["query", "exec", "transaction"] as const) {
    const original = (pglite[name] as (...args: unknown[]) => Promise<unknown>).bind(pglite);
    Object.defineProperty(quiet, name, { value: original });
    Object.defineProperty(pglite, name, {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) => {
        const pending = original(...args);
        // A failed statement reports too (it may have ended a transaction); the caller still sees the rejection.
        void pending.then(notify, notify);
        return pending;
      },
    });
  }
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    quietSql: pgliteRunner(quiet),
  };
}
