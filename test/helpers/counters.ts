import { expect } from "bun:test";
import type { DatabaseHandle } from "../../src/db/client.ts";
import { counterDrift } from "../../src/diagnostics/counters.ts";
import { JOBS } from "./messaging.ts";

/** The counters equal the rows: sum(stripes) = count(*) of conversations, every message_count = its messages. */
export async function expectCountersExact(database: DatabaseHandle): Promise<number> {
  const drift = await counterDrift(database.sql);
  expect(drift.messageCountsOff).toBe(0);
  expect(drift.counted).toBe(drift.conversations);
  return drift.conversations;
}

/** Records a delivery attempt for a message, as a worker would, so that tests can see it go with the message. */
export async function addAttempt(database: DatabaseHandle, messageId: string): Promise<void> {
  await database.sql.query(
    `INSERT INTO delivery_attempts (message_id, attempt, provider, outcome, duration_ms, started_at)
     VALUES ($1, 1, 'sms-mms', 'accepted', 5, now())`,
    [messageId],
  );
}

/**
 * Rows of `table` whose message_id is one of `ids`: delivery attempts, or "delivery_jobs", the messages among `ids`
 * still in the delivery queue (a message is its own job, delivery/jobs.ts).
 */
export async function rowsOfMessages(database: DatabaseHandle, table: "delivery_attempts" | "delivery_jobs", ids: string[]): Promise<number> {
  const from = table === "delivery_jobs" ? JOBS : table;
  const [row] = await database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${from} WHERE message_id = ANY($1::bigint[])`, [
    `{${ids.join(",")}}`,
  ]);
  return row!.n;
}
