import type { SqlRunner } from "../db/runner.ts";

/*
 * The counters the write path keeps (db/schema.ts: conversation_counters, conversations.message_count),
 * compared with the rows they count. One statement is one snapshot, and every write moves a counter in the
 * statement that moves its rows, so on a healthy database the two agree even while the service writes.
 */
const DRIFT = `
  WITH actual AS (
    SELECT c.id, c.message_count, coalesce(m.n, 0)::int AS n
      FROM conversations c LEFT JOIN (SELECT conversation_id, count(*) AS n FROM messages GROUP BY conversation_id) m
        ON m.conversation_id = c.id)
  SELECT (SELECT coalesce(sum(conversations), 0) FROM conversation_counters)::float8 AS counted,
         (SELECT count(*) FROM conversations)::float8 AS conversations,
         (SELECT count(*) FROM actual WHERE message_count <> n)::int AS message_counts_off`;

export interface CounterDrift {
  /** What the counters say (the API's `meta.total`). */
  counted: number;
  /** What count(*) says. */
  conversations: number;
  /** Conversations whose message_count is not the number of their messages. */
  messageCountsOff: number;
}

interface DriftRow {
  counted: number;
  conversations: number;
  message_counts_off: number;
}

export async function counterDrift(sql: SqlRunner): Promise<CounterDrift> {
  const [row] = await sql.query<DriftRow>(DRIFT);
  return { counted: Number(row?.counted ?? 0), conversations: Number(row?.conversations ?? 0), messageCountsOff: row?.message_counts_off ?? 0 };
}

export const isExact = (d: CounterDrift) => d.counted === d.conversations && d.messageCountsOff === 0;

const FIX_MESSAGE_COUNTS = `
  UPDATE conversations c SET message_count = a.n
    FROM (SELECT c2.id, coalesce(m.n, 0)::int AS n
            FROM conversations c2 LEFT JOIN (SELECT conversation_id, count(*) AS n FROM messages GROUP BY conversation_id) m
              ON m.conversation_id = c2.id) a
   WHERE c.id = a.id AND c.message_count <> a.n`;

const RESET_STRIPES = `
  INSERT INTO conversation_counters (stripe, conversations)
  SELECT s, CASE WHEN s = 0 THEN (SELECT count(*) FROM conversations) ELSE 0 END FROM generate_series(0, 15) AS s
  ON CONFLICT (stripe) DO UPDATE SET conversations = EXCLUDED.conversations`;

/**
 * Recomputes the counters from the rows, in one transaction; returns the drift it found (before) and after.
 *
 * Every statement that writes conversations or messages (sends, webhooks, retention, DELETE) names
 * conversation_counters and so holds a ROW EXCLUSIVE lock on it from its start to its commit; the EXCLUSIVE
 * lock taken here waits for those in flight and holds off new ones (reads go on), so the counts are taken
 * while nothing can change them. Also needed after a rolling upgrade, when an older version of the service
 * created conversations without counting them.
 */
export async function repairCounters(sql: SqlRunner): Promise<{ before: CounterDrift; after: CounterDrift }> {
  return sql.transaction(async (tx) => {
    await tx.query("LOCK TABLE conversation_counters IN EXCLUSIVE MODE");
    const before = await counterDrift(tx);
    if (before.messageCountsOff > 0) await tx.query(FIX_MESSAGE_COUNTS);
    if (before.counted !== before.conversations) await tx.query(RESET_STRIPES);
    return { before, after: await counterDrift(tx) };
  });
}
