/**
 * The one way an outbound message's status is written (SPEC §1): a conditional UPDATE whose condition is the
 * transition table of domain/message-status.ts rendered into SQL, so the database itself refuses a step back.
 * A late or repeated report, or two instances racing, therefore change nothing instead of undoing a newer
 * truth: the row lock makes the second writer re-check the condition against the first one's result.
 */
import type { SqlRunner } from "../db/runner.ts";
import { canTransition, MESSAGE_STATUSES, type MessageStatus } from "../domain/message-status.ts";
import { nullableTextArray, textArray } from "../db/sql-arrays.ts";

/** One status change to apply to one message. */
export interface StatusChange {
  messageId: string;
  to: MessageStatus;
  /** Set on the first acceptance; a message keeps the provider and id it was first accepted with. */
  provider?: string | null;
  providerMessageId?: string | null;
  /** Why the message failed or was undelivered (the last provider error, a report's error code). */
  reason?: string | null;
}

/** The allowed (from, to) pairs as a SQL VALUES list, built from the domain table so the two cannot drift. */
const ALLOWED_PAIRS = MESSAGE_STATUSES.flatMap((from) =>
  MESSAGE_STATUSES.filter((to) => canTransition(from, to)).map((to) => `('${from}','${to}')`),
).join(",");

/** A SQL condition: `fromExpr` may move to `toExpr` (both text expressions). */
export const statusMayMoveSql = (fromExpr: string, toExpr: string) => `(${fromExpr}, ${toExpr}) IN (VALUES ${ALLOWED_PAIRS})`;

/** The statuses of a message in the delivery queue (`run_at` set): waiting for a worker, or held by one. */
export const IN_QUEUE_SQL = "('queued', 'sending')";

/**
 * THE status write: a conditional UPDATE of `messages` from the relation `source` (columns id, status,
 * provider, provider_message_id, reason), returning the rows it touched (`id` as text, `status`, `moved`).
 * Statements that change statuses embed it, as a data-modifying CTE or whole, and nothing else writes
 * `messages.status` of an outbound message, except the claim's `queued` → `sending` (delivery/jobs.ts).
 *
 * It also keeps the delivery queue (the message row is its own job, migration 0016): a message entering
 * `queued` (from `scheduled`) joins it, due now; a message leaving `queued`/`sending` (sent, a final status, a
 * cancel) leaves it, with its claim. So "in the queue" and the status cannot disagree, whoever writes.
 *
 * The provider fields are filled when still empty even if the status does not move, so that an acceptance
 * recorded after a faster `delivered` report still names its provider. A reason is kept only with the move
 * it explains. `ids` (optional): an SQL bigint[] holding every id of `source`, which lets the planner find the
 * rows by the primary key instead of hashing the whole table.
 */
export const advanceStatusSql = (source: string, ids?: string) => {
  const moves = statusMayMoveSql("m.status", `${source}.status`);
  const next = `(CASE WHEN ${moves} THEN ${source}.status ELSE m.status END)`;
  const leaves = `${next} NOT IN ${IN_QUEUE_SQL}`;
  return `
  UPDATE messages m
     SET status = ${next},
         status_reason = CASE WHEN ${moves} THEN coalesce(${source}.reason, m.status_reason) ELSE m.status_reason END,
         provider = coalesce(m.provider, ${source}.provider),
         provider_message_id = coalesce(m.provider_message_id, ${source}.provider_message_id),
         run_at = CASE WHEN ${leaves} THEN NULL ELSE coalesce(m.run_at, now()) END,
         locked_by = CASE WHEN ${leaves} THEN NULL ELSE m.locked_by END,
         locked_until = CASE WHEN ${leaves} THEN NULL ELSE m.locked_until END,
         updated_at = now()
    FROM ${source}
   WHERE m.id = ${source}.id AND m.direction = 'outbound'${ids ? ` AND m.id = ANY(${ids})` : ""}
     AND (${moves}
          OR (${source}.provider_message_id IS NOT NULL AND m.provider_message_id IS NULL))
  RETURNING m.id::text AS id, m.status, m.status = ${source}.status AS moved`;
};

/** The columns of a batch of changes as `unnest` parameters $n…$n+4, for `advanceStatusSql`. */
export const changesFromParams = (first: number) =>
  `SELECT * FROM unnest($${first}::bigint[], $${first + 1}::text[], $${first + 2}::text[], $${first + 3}::text[], $${first + 4}::text[])
            AS c(id, status, provider, provider_message_id, reason)`;

/** The parameters `changesFromParams` reads. */
export function changeParams(changes: readonly StatusChange[]): string[] {
  const column = (pick: (c: StatusChange) => string | null | undefined) => nullableTextArray(changes.map(pick));
  return [
    textArray(changes.map((c) => c.messageId)),
    textArray(changes.map((c) => c.to)),
    column((c) => c.provider),
    column((c) => c.providerMessageId),
    column((c) => c.reason),
  ];
}

const ADVANCE = `WITH change AS (${changesFromParams(1)}) ${advanceStatusSql("change", "$1::bigint[]")}`;

/** A message an `advanceStatuses` call touched: `moved` is false when only its provider fields were filled. */
export interface StatusAdvanced {
  id: string;
  status: MessageStatus;
  moved: boolean;
}

/**
 * Applies status changes in one statement and returns the messages it touched. A change the transition table
 * refuses (a step back, a repeat, a report about an inbound message) leaves the row alone and is absent from
 * the result. Each message may appear once per call: pass its latest change.
 */
export async function advanceStatuses(sql: SqlRunner, changes: readonly StatusChange[]): Promise<StatusAdvanced[]> {
  if (changes.length === 0) return [];
  return sql.query<StatusAdvanced>(ADVANCE, changeParams(changes));
}
