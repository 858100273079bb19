import { rfc3339Utc } from "../../db/json-sql.ts";
import type { SqlRunner } from "../../db/runner.ts";

/*
 * One page, newest activity first (ties by id), as a JSON array built by PostgreSQL, with the total in the
 * same round trip. The total is an uncorrelated subquery (evaluated once, an index-only count) rather than
 * `count(*) over ()`, which would materialize every row before the LIMIT.
 */
const PAGE = `
  SELECT (SELECT count(*) FROM conversations)::int AS total,
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
