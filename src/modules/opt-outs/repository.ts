import { cursorTimestamp, rfc3339Utc } from "../../db/json-sql.ts";
import type { SqlRunner } from "../../db/runner.ts";
import type { OptOutPair } from "../../domain/opt-out.ts";
import type { RowKey } from "../../http/page-cursor.ts";
import type { OptOutItem } from "./model.ts";

/** Where an opt-out came from: a keyword the person texted, or a provider's answer to a send. */
export type OptOutSource = "inbound" | "provider";

/*
 * A repeated STOP (or a provider repeating that the person is unsubscribed) keeps the first row: the opt-out
 * has held since then, and its reason and message stay the ones that started it.
 */
const RECORD = `
  INSERT INTO opt_outs (from_addr, to_addr, source, reason, message_id) VALUES ($1, $2, $3, $4, $5::text::bigint)
  ON CONFLICT (from_addr, to_addr) DO NOTHING`;

/** Opts `pair.to` out of messages from `pair.from`, unless already; `messageId` is the message that said so. */
export async function recordOptOut(sql: SqlRunner, pair: OptOutPair, source: OptOutSource, reason: string, messageId: string | null): Promise<void> {
  await sql.query(RECORD, [pair.from, pair.to, source, reason, messageId]);
}

/** Opts `pair.to` back in to messages from `pair.from` (nothing to do when they were not opted out). */
export async function removeOptOut(sql: SqlRunner, pair: OptOutPair): Promise<void> {
  await sql.query("DELETE FROM opt_outs WHERE from_addr = $1 AND to_addr = $2", [pair.from, pair.to]);
}

/** Sorts before every opt-out in the list's order (newest first), so the whole list is "after" it. */
const FIRST_KEY: RowKey = { at: "infinity", id: "9223372036854775807" };

/*
 * One page, newest first (ties by id), optionally of one sender ($5) and/or one recipient ($6), with the number
 * of matching rows. The rows start after the key ($3, $4), a range scan of opt_outs_recent_idx; one row beyond
 * the page says whether a next one exists. The total is a count(*): the table holds a row per person who
 * opted out, not per message, so it stays small next to the message tables.
 */
const PAGE = `
  WITH matching AS (
    SELECT * FROM opt_outs WHERE ($5::text IS NULL OR from_addr = $5) AND ($6::text IS NULL OR to_addr = $6)),
  page AS (
    SELECT p.*, row_number() OVER (ORDER BY p.created_at DESC, p.id DESC) AS n
      FROM (SELECT * FROM matching WHERE (created_at, id) < ($3::text::timestamptz, $4::text::bigint)
             ORDER BY created_at DESC, id DESC LIMIT $1::int + 1 OFFSET $2) p)
  SELECT (SELECT count(*) FROM matching)::int AS total,
         coalesce(json_agg(json_build_object(
           'from', o.from_addr, 'to', o.to_addr, 'source', o.source, 'reason', o.reason,
           'message_id', o.message_id::text, 'created_at', ${rfc3339Utc("o.created_at")}
         ) ORDER BY o.created_at DESC, o.id DESC) FILTER (WHERE o.n <= $1), '[]')::text AS items,
         CASE WHEN count(*) > $1 THEN max(CASE WHEN o.n = $1 THEN ${cursorTimestamp("o.created_at")} END) END AS next_at,
         CASE WHEN count(*) > $1 THEN max(CASE WHEN o.n = $1 THEN o.id END)::text END AS next_id
    FROM page o`;

export interface OptOutFilter {
  /** Normalized; only opt-outs of this sender (our number). */
  from?: string | undefined;
  /** Normalized; only opt-outs of this recipient. */
  to?: string | undefined;
}

export interface OptOutsPage {
  items: OptOutItem[];
  total: number;
  next: RowKey | null;
}

/** A page of opt-outs matching `filter`: the rows after `after` (default: from the newest), less the first `offset`. */
export async function optOutsPage(sql: SqlRunner, filter: OptOutFilter, limit: number, offset: number, after?: RowKey): Promise<OptOutsPage> {
  const from = after ?? FIRST_KEY;
  const [row] = await sql.query<{ total: number; items: string; next_at: string | null; next_id: string | null }>(PAGE, [
    limit,
    offset,
    from.at,
    from.id,
    filter.from ?? null,
    filter.to ?? null,
  ]);
  const next = row?.next_at && row.next_id ? { at: row.next_at, id: row.next_id } : null;
  return { items: JSON.parse(row?.items ?? "[]") as OptOutItem[], total: row?.total ?? 0, next };
}
