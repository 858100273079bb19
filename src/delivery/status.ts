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
 * Statements that change statuses embed it, as data-modifying CTEs (`statusWriteCtes`, which also writes the
 * events) or whole, and nothing else writes `messages.status` of an outbound message, except the claim's `queued`
 * → `sending` (delivery/jobs.ts).
 *
 * It also keeps the delivery queue (the message row is its own job, migration 0016): a message entering
 * `queued` (from `scheduled`) joins it, due now; a message leaving `queued`/`sending` (sent, a final status, a
 * cancel) leaves it, with its claim. So "in the queue" and the status cannot disagree, whoever writes.
 *
 * The provider fields are filled when still empty even if the status does not move, so that an acceptance
 * recorded after a faster `delivered` report still names its provider. A reason is kept only with the move
 * it explains. `ids` (optional): an SQL bigint[] holding every id of `source`, which lets the planner find the
 * rows by the primary key instead of hashing the whole table.
 *
 * `writesEvents`: the statement inserts the events of these moves itself (statusEventsSql): each move counts one
 * in `status_events`, which tells the row trigger (migration 0020) to leave the row alone, and the rows returned
 * carry what the event needs. Otherwise the trigger writes them.
 */
const statusUpdateSql = (source: string, ids: string | undefined, writesEvents: boolean) => {
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
         locked_until = CASE WHEN ${leaves} THEN NULL ELSE m.locked_until END,${
           writesEvents ? `
         status_events = CASE WHEN ${moves} THEN m.status_events + 1 ELSE m.status_events END,` : ""
         }
         updated_at = now()
    FROM ${source}
   WHERE m.id = ${source}.id AND m.direction = 'outbound'${ids ? ` AND m.id = ANY(${ids})` : ""}
     AND (${moves}
          OR (${source}.provider_message_id IS NOT NULL AND m.provider_message_id IS NULL))
  RETURNING m.id::text AS id, m.status, m.status = ${source}.status AS moved${
    writesEvents ? ", m.id AS message_id, m.status_reason, m.provider, m.provider_message_id" : ""
  }`;
};

/** The status write whose events the row trigger writes (see statusUpdateSql). */
export const advanceStatusSql = (source: string, ids?: string) => statusUpdateSql(source, ids, false);

/*
 * The events of the moves in `moved` (the rows a status write with `writesEvents` returned), one INSERT for the
 * batch, as the row trigger would write them. `moved` is also true for a row whose status already was the one
 * asked for and only got its provider fields; statuses never repeat (the transition table has no cycle), so a
 * subject whose last event already has the status is such a row and gets no second event. The last event is read
 * by messaging_last_event with a snapshot of its own: a write that waited for the row's lock sees the event of the
 * writer it waited for, and follows it in sequence and in feed order (feed_xid at least that event's).
 */
const statusEventsSql = (moved: string) => `
  INSERT INTO events (feed_xid, type, subject, sequence, message_id, status, reason, provider, provider_message_id)
  SELECT greatest(pg_current_xact_id(), last.feed_xid), 'message.' || mv.status, mv.id, coalesce(last.sequence, 0) + 1,
         mv.message_id, mv.status, mv.status_reason, mv.provider, mv.provider_message_id
    FROM ${moved} mv LEFT JOIN LATERAL messaging_last_event(mv.id) last ON true
   WHERE mv.moved AND mv.status <> 'sending' AND last.status IS DISTINCT FROM mv.status
   ORDER BY mv.message_id`;

/**
 * The status write and its events as two data-modifying CTEs for a WITH list: `<name>` (the UPDATE, returning
 * what advanceStatusSql returns, plus the event's fields) and `<name>_events` (their INSERT).
 */
export const statusWriteCtes = (name: string, source: string, ids?: string) =>
  `${name} AS (${statusUpdateSql(source, ids, true)}),
  ${name}_events AS (${statusEventsSql(name)})`;

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

const ADVANCE = `WITH change AS (${changesFromParams(1)}), ${statusWriteCtes("moved", "change", "$1::bigint[]")} SELECT id, status, moved FROM moved`;

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
