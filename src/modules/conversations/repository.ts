import { randomBytes } from "node:crypto";
import { DELETE_DEPENDENTS, UNCOUNT_REMOVED } from "../../db/conversation-counts.ts";
import { cursorTimestamp, rfc3339Utc } from "../../db/json-sql.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { hasSqlState, SQLSTATE } from "../../db/sql-state.ts";
import type { RowKey } from "../../http/page-cursor.ts";

/*
 * The page's rows plus one: the extra row only tells whether a next page exists (it is not shown), so the
 * last page has no next cursor. Rows start after the key ($3, $4) with a row comparison, which PostgreSQL
 * answers from conversations_recent_idx as an index range scan (last_activity_at is NOT NULL, so the index's
 * NULLS FIRST never matters); a page-based request passes a key before every row (FIRST_KEY) and skips
 * OFFSET rows as before.
 */
const pageRows = `(
  SELECT p.*, row_number() OVER (ORDER BY p.last_activity_at DESC, p.id DESC) AS n
    FROM (SELECT * FROM conversations WHERE (last_activity_at, id) < ($3::text::timestamptz, $4::text::bigint)
           ORDER BY last_activity_at DESC, id DESC LIMIT $1::int + 1 OFFSET $2) p)`;

/** The key of the page's last row, when a row follows it. */
const NEXT_KEY = `CASE WHEN count(*) > $1 THEN max(CASE WHEN c.n = $1 THEN ${cursorTimestamp("c.last_activity_at")} END) END AS next_at,
         CASE WHEN count(*) > $1 THEN max(CASE WHEN c.n = $1 THEN c.id END)::text END AS next_id`;

/** Sorts before every conversation in the list's order (newest first), so the whole list is "after" it. */
const FIRST_KEY: RowKey = { at: "infinity", id: "9223372036854775807" };

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
         ) ORDER BY c.last_activity_at DESC, c.id DESC) FILTER (WHERE c.n <= $1), '[]')::text AS items,
         ${NEXT_KEY}
    FROM ${pageRows} c`;

export interface ConversationsPage {
  /** The JSON text of the list, ready to be embedded in the response. */
  itemsJson: string;
  total: number;
  /** Where the next page starts; null on the last page. */
  next: RowKey | null;
}

/** A page of conversations: the rows after `after` (default: from the top), less the first `offset`. */
export async function conversationsPage(sql: SqlRunner, limit: number, offset: number, after?: RowKey): Promise<ConversationsPage> {
  const from = after ?? FIRST_KEY;
  const [row] = await sql.query<PageRow>(PAGE, [limit, offset, from.at, from.id]);
  const next = row?.next_at && row.next_id ? { at: row.next_at, id: row.next_id } : null;
  return { itemsJson: row?.items ?? "[]", total: row?.total ?? 0, next };
}

interface PageRow {
  total: number;
  items: string;
  next_at: string | null;
  next_id: string | null;
}

const CURSOR_SECRET = "cursor.secret";

/**
 * The secret page cursors are signed with (http/page-cursor.ts), shared by every instance on this database:
 * the first reader stores a random one (a concurrent first reader's insert does nothing), and all read it back.
 */
export async function cursorSecret(sql: SqlRunner): Promise<Uint8Array> {
  await sql.query(
    "INSERT INTO runtime_settings (name, value) VALUES ($1, to_jsonb($2::text)) ON CONFLICT (name) DO NOTHING",
    [CURSOR_SECRET, randomBytes(32).toString("base64url")],
  );
  const [row] = await sql.query<{ secret: string }>("SELECT value #>> '{}' AS secret FROM runtime_settings WHERE name = $1", [CURSOR_SECRET]);
  if (!row?.secret) throw new Error("runtime_settings holds no cursor secret after storing one");
  return Buffer.from(row.secret, "base64url");
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
