import { DELETE_DEPENDENTS, UNCOUNT_REMOVED } from "../../db/conversation-counts.ts";
import type { SqlRunner } from "../../db/runner.ts";

/*
 * One batch of retention as one statement: the oldest messages past the cutoff (by their own `timestamp`, the
 * time a user means by "older than"), with their attempts and jobs; their conversations' message_count goes
 * down by what was really deleted, a conversation left without messages is deleted, and the counters follow.
 * (A message is its own delivery job, delivery/jobs.ts: its queue columns go with its row.)
 *
 * A scheduled message is never old: it waits for its send_at however old its client's `timestamp` is, and is
 * purged only once sent or canceled, by a later run.
 *
 * A message still in a worker's hands (leased, or being claimed right now) is left for a later run, so retention
 * never races a delivery for the message row; a queued one is locked first, with SKIP LOCKED.
 *
 * Conversations are locked with SKIP LOCKED, so retention never waits on a conversation: concurrent instances
 * take disjoint conversations, and a send or a DELETE holding one keeps it (its messages wait for a later
 * batch). Deleting only messages of conversations it holds means nothing else can remove them meanwhile, and
 * the counts come from what the DELETE returned, so no message or conversation is counted twice. The row
 * `locked` returns is the latest version, so `message_count` includes sends that committed after the
 * statement's snapshot: a conversation is deleted only when no message is left in it.
 */
const PURGE_BATCH = `
  WITH candidates AS MATERIALIZED (
    SELECT m.id, m.conversation_id, m.run_at IS NOT NULL AS in_queue FROM messages m
     WHERE m.timestamp < now() - $1::int * interval '1 day'
       AND m.status <> 'scheduled'
       AND (m.locked_until IS NULL OR m.locked_until <= now())
     ORDER BY m.timestamp LIMIT $2),
  locked AS MATERIALIZED (
    SELECT c.id, c.message_count FROM conversations c
     WHERE c.id IN (SELECT conversation_id FROM candidates)
     ORDER BY c.key FOR UPDATE OF c SKIP LOCKED),
  free_jobs AS MATERIALIZED (
    SELECT id FROM messages WHERE id IN (SELECT id FROM candidates WHERE in_queue) FOR UPDATE SKIP LOCKED),
  doomed AS (
    SELECT id FROM candidates
     WHERE conversation_id IN (SELECT id FROM locked)
       AND (NOT in_queue OR id IN (SELECT id FROM free_jobs))),
  ${DELETE_DEPENDENTS},
  messages_gone AS (DELETE FROM messages WHERE id IN (SELECT id FROM doomed) RETURNING conversation_id),
  per_conversation AS (
    SELECT l.id, l.message_count, count(*)::int AS n
      FROM messages_gone g JOIN locked l ON l.id = g.conversation_id GROUP BY l.id, l.message_count),
  shrunk AS (
    UPDATE conversations c SET message_count = c.message_count - p.n
      FROM per_conversation p WHERE c.id = p.id AND p.message_count > p.n),
  removed AS (
    DELETE FROM conversations c USING per_conversation p WHERE c.id = p.id AND p.message_count <= p.n RETURNING c.id),
  ${UNCOUNT_REMOVED}
  SELECT (SELECT count(*) FROM messages_gone)::int AS messages, (SELECT count(*) FROM removed)::int AS conversations`;

export interface Purged {
  messages: number;
  conversations: number;
}

/** Deletes up to `limit` messages older than `days` days (see PURGE_BATCH); returns what went. */
export async function purgeBatch(sql: SqlRunner, days: number, limit: number): Promise<Purged> {
  const [row] = await sql.query<Purged>(PURGE_BATCH, [days, limit]);
  return row ?? { messages: 0, conversations: 0 };
}
