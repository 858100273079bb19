/**
 * The SQL of scheduled sends: taking due messages off the schedule into the delivery queue, cancelling, and the
 * counts the promoter paces itself and its gauge by. A scheduled message is a `messages` row with status
 * `scheduled` and a `scheduled_messages` row (migration 0013) that exists exactly while it waits; both leave
 * that state together, in one statement, whoever moves them (the promoter or a cancel).
 *
 * Lock order, the same in every statement here: the `scheduled_messages` row, then the message. The delivery
 * queue is the message row itself (delivery/jobs.ts), and the claim and result writes lock only message rows, so
 * none of them can deadlock with these.
 */
import type { SqlRunner } from "../../db/runner.ts";
import { textArray, nullableTextArray } from "../../db/sql-arrays.ts";
import { QUEUED_DUE } from "../../delivery/enqueue.ts";
import { advanceStatusSql } from "../../delivery/status.ts";
import type { Channel } from "../../domain/channel.ts";
import type { MessageStatus } from "../../domain/message-status.ts";

/** A due scheduled message, locked by the promoter's transaction until it commits. */
export interface DueMessage {
  id: string;
  channel: Channel;
  from: string;
  to: string;
}

/*
 * The oldest due ones first, skipping those another instance's promoter holds: instances share the backlog
 * without waiting on each other, and a row is only ever taken by one of them.
 */
const LOCK_DUE = `
  SELECT s.message_id::text AS id, m.channel, m.from_addr, m.to_addr
    FROM scheduled_messages s JOIN messages m ON m.id = s.message_id
   WHERE s.send_at <= now()
   ORDER BY s.send_at, s.message_id
   LIMIT $1
     FOR UPDATE OF s SKIP LOCKED`;

/** Locks up to `limit` due scheduled messages for the rest of the caller's transaction. */
export async function lockDue(tx: SqlRunner, limit: number): Promise<DueMessage[]> {
  const rows = await tx.query<{ id: string; channel: Channel; from_addr: string; to_addr: string }>(LOCK_DUE, [limit]);
  return rows.map((r) => ({ id: r.id, channel: r.channel, from: r.from_addr, to: r.to_addr }));
}

/*
 * Takes locked due messages off the schedule: each becomes `queued` and enters the delivery queue, or, when its
 * recipient opted out of its sender since it was accepted ($2, $3: the normalized pair, NULL for an email),
 * `failed` with reason `recipient_opted_out` and never reaches a provider (SPEC §3: the check runs again at
 * dispatch). The status moves through the one status write, which also puts a `queued` message in the delivery
 * queue (due now), so a message a cancel took meanwhile stays canceled and is not queued.
 */
const PROMOTE = `
  WITH input AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) AS i(id, opt_from, opt_to)),
  taken AS (DELETE FROM scheduled_messages s USING input WHERE s.message_id = input.id RETURNING s.message_id),
  checked AS (
    SELECT i.id, EXISTS (SELECT 1 FROM opt_outs o WHERE o.from_addr = i.opt_from AND o.to_addr = i.opt_to) AS opted_out
      FROM input i JOIN taken t ON t.message_id = i.id),
  change AS (
    SELECT id, CASE WHEN opted_out THEN 'failed' ELSE 'queued' END AS status, NULL::text AS provider,
           NULL::text AS provider_message_id, CASE WHEN opted_out THEN 'recipient_opted_out' END AS reason
      FROM checked),
  moved AS (${advanceStatusSql("change", "$1::bigint[]")})
  SELECT id, status FROM moved WHERE moved`;

/** A message the promoter moved: `queued` (now in the delivery queue) or `failed` (opted out). */
export interface Promoted {
  id: string;
  status: "queued" | "failed";
}

/** Takes `due` (locked by `lockDue` in the same transaction) off the schedule; `optOut` gives each one's pair. */
export async function promoteLocked(
  tx: SqlRunner,
  due: readonly DueMessage[],
  optOut: (m: DueMessage) => { from: string; to: string } | null,
): Promise<Promoted[]> {
  if (due.length === 0) return [];
  const pairs = due.map(optOut);
  return tx.query<Promoted>(PROMOTE, [
    textArray(due.map((m) => m.id)),
    nullableTextArray(pairs.map((p) => p?.from ?? null)),
    nullableTextArray(pairs.map((p) => p?.to ?? null)),
  ]);
}

/** When the next scheduled message is due (ms since the epoch), or null when none waits. */
export async function nextDueAt(sql: SqlRunner): Promise<number | null> {
  const [row] = await sql.query<{ at: number | null }>("SELECT (extract(epoch FROM min(send_at)) * 1000)::float8 AS at FROM scheduled_messages");
  return row?.at == null ? null : Number(row.at);
}

/** How many scheduled messages wait, on every instance. */
export async function countScheduled(sql: SqlRunner): Promise<number> {
  const [row] = await sql.query<{ n: number }>("SELECT count(*)::int AS n FROM scheduled_messages");
  return row?.n ?? 0;
}

/**
 * How many messages (anyone's, fresh sends included) wait in the delivery queue for a worker now, counted up to
 * `bound`. The promoter hands the next batch over only while few do, so a backlog enters the queue at the rate it
 * drains, and a fresh send finds at most about one batch of it ahead.
 */
export async function countQueuedDue(sql: SqlRunner, bound: number): Promise<number> {
  const [row] = await sql.query<{ n: number }>(QUEUED_DUE, [bound]);
  return row?.n ?? 0;
}

/*
 * A cancel, decided by this one statement: a scheduled message leaves the schedule, or a queued one is taken while
 * no worker has claimed it, and either becomes `canceled` through the one status write. "Queued and not claimed"
 * is the delivery queue's own contract (delivery/jobs.ts): exactly `status = 'queued'`, since a claim moves the
 * message to `sending` in the statement that leases it. The status write re-reads the row under its lock, so
 * a claim that committed first leaves `sending` there and nothing moves (409); a cancel that commits first takes
 * the message out of the queue, and the claim's row lock, re-reading the row, does not pick it. Only rows of the schedule and the message
 * are locked, in that order (the promoter's order), so neither a claim nor a result write can deadlock with it.
 * `before` is what the statement's snapshot saw, for the answer when nothing moved.
 */
const CANCEL = `
  WITH sched AS (DELETE FROM scheduled_messages WHERE message_id = $1 RETURNING message_id),
  change AS (
    SELECT $1::bigint AS id, 'canceled'::text AS status, NULL::text AS provider, NULL::text AS provider_message_id, NULL::text AS reason
     WHERE EXISTS (SELECT 1 FROM sched) OR EXISTS (SELECT 1 FROM messages WHERE id = $1 AND status = 'queued')),
  moved AS (${advanceStatusSql("change")})
  SELECT (SELECT status FROM messages WHERE id = $1) AS before,
         EXISTS (SELECT 1 FROM sched) AS from_schedule,
         EXISTS (SELECT 1 FROM moved WHERE moved) AS canceled`;

/** What one cancel statement did: `before` is null when no such message exists. */
export interface CancelAttempt {
  before: MessageStatus | null;
  fromSchedule: boolean;
  canceled: boolean;
}

export async function cancelOnce(sql: SqlRunner, id: number): Promise<CancelAttempt> {
  const [row] = await sql.query<{ before: MessageStatus | null; from_schedule: boolean; canceled: boolean }>(CANCEL, [id]);
  return { before: row?.before ?? null, fromSchedule: row?.from_schedule ?? false, canceled: row?.canceled ?? false };
}

/** The status a message has now (a fresh snapshot), or null when there is no such message. */
export async function currentStatus(sql: SqlRunner, id: number): Promise<MessageStatus | null> {
  const [row] = await sql.query<{ status: MessageStatus }>("SELECT status FROM messages WHERE id = $1", [id]);
  return row?.status ?? null;
}
