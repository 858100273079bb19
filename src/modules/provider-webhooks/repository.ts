import type { SqlRunner } from "../../db/runner.ts";
import { textArray } from "../../db/sql-arrays.ts";

/*
 * Raw SQL: a batch of ids goes in as one array parameter (db/sql-arrays.ts), which drizzle's builder would turn
 * into one parameter per id and a statement text per batch size.
 */

/** Which of `eventIds` this provider already sent. */
export async function seenEventIds(sql: SqlRunner, provider: string, eventIds: readonly string[]): Promise<Set<string>> {
  if (eventIds.length === 0) return new Set();
  const rows = await sql.query<{ event_id: string }>(
    "SELECT event_id FROM provider_events WHERE provider = $1 AND event_id = ANY($2::text[])",
    [provider, textArray(eventIds)],
  );
  return new Set(rows.map((r) => r.event_id));
}

/** Remembers event ids as applied; an id recorded meanwhile by a concurrent delivery of the batch is left as it is. */
export async function recordEventIds(sql: SqlRunner, provider: string, eventIds: readonly string[]): Promise<void> {
  if (eventIds.length === 0) return;
  await sql.query(
    `INSERT INTO provider_events (provider, event_id)
     SELECT $1, id FROM unnest($2::text[]) AS id
     ON CONFLICT (provider, event_id) DO NOTHING`,
    [provider, textArray(eventIds)],
  );
}

/** Deletes event ids remembered longer than `hours`; returns how many. */
export async function deleteEventIdsOlderThan(sql: SqlRunner, hours: number): Promise<number> {
  const [row] = await sql.query<{ n: number }>(
    `WITH gone AS (DELETE FROM provider_events WHERE received_at < now() - make_interval(hours => $1::int) RETURNING 1)
     SELECT count(*)::int AS n FROM gone`,
    [hours],
  );
  return row?.n ?? 0;
}
