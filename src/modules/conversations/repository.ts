import { rfc3339Utc } from "../../db/json-sql.ts";
import { DELETE_DEPENDENTS, UNCOUNT_REMOVED } from "../../db/conversation-counts.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { hasSqlState, SQLSTATE } from "../../db/sql-state.ts";

/*
 * One page, newest activity first (ties by id), as a JSON array built by PostgreSQL, with the total in the
 * same round trip. The total is the sum of the counter stripes the write path keeps (db/schema.ts): sixteen
 * rows whatever the size of the table, where `count(*)` grew linearly (233 ms at a million conversations).
 */
const PAGE = `
  SELECT (SELECT coalesce(sum(conversations), 0) FROM conversation_counters)::int AS total,
         coalesce(json_agg(json_build_object(
           'id', c.id::text, 'key', c.key, 'channel', c.transport,
           'participant_a', c.participant_a, 'participant_b', c.participant_b,
           'message_count', c.message_count, 'last_activity_at', ${rfc3339Utc("c.last_activity_at")}
         ) ORDER BY c.last_activity_at DESC, c.id DESC), '[]')::text AS items
    FROM (SELECT * FROM conversations ORDER BY last_activity_at DESC, id DESC LIMIT $1 OFFSET $2) c`;

/** A page of conversations: `items` is the JSON text of the list, ready to be embedded in the response. */
export async function conversationsPage(sql: SqlRunner, limit: number, offset: number): Promise<{ itemsJson: string; total: number }> {
  const [row] = await sql.query<{ total: number; items: string }>(PAGE, [limit, offset]);
  return { itemsJson: row?.items ?? "[]", total: row?.total ?? 0 };
}

/*
 * The conversation, all its messages and what hangs off them, in one statement run after the conversation row
 * was locked (see deleteConversation): a send to the same pair waits on that lock, then finds the row gone
 * and creates the conversation anew.
 */
const DELETE_CONVERSATION = `
  WITH doomed AS (SELECT id FROM messages WHERE conversation_id = $1),
  ${DELETE_DEPENDENTS},
  messages_gone AS (DELETE FROM messages WHERE conversation_id = $1 RETURNING id),
  removed AS (DELETE FROM conversations WHERE id = $1 RETURNING id),
  ${UNCOUNT_REMOVED}
  SELECT (SELECT count(*) FROM messages_gone)::int AS messages`;

/**
 * Deletes a conversation with everything in it; false when there is no such conversation. The row is locked
 * first, in a statement of its own: the delete's snapshot then starts after every send that held the lock
 * committed, so no message it did not see can still point at the conversation (the foreign key would refuse
 * the delete). A delivery worker writing a result for one of its messages at that moment locks message and
 * job rows in an order of its own; should the two deadlock, PostgreSQL ends one and the delete runs again.
 */
export async function deleteConversation(sql: SqlRunner, id: number): Promise<boolean> {
  for (let tries = 1; ; tries++) {
    try {
      return await sql.transaction(async (tx) => {
        const [found] = await tx.query<{ id: string }>("SELECT id::text AS id FROM conversations WHERE id = $1 FOR UPDATE", [id]);
        if (!found) return false;
        await tx.query(DELETE_CONVERSATION, [id]);
        return true;
      });
    } catch (err) {
      if (tries >= DELETE_TRIES || !hasSqlState(err, SQLSTATE.deadlockDetected)) throw err;
    }
  }
}

const DELETE_TRIES = 3;
