/**
 * The events as the client app reads them (SPEC §10): the pull feed `GET /api/events` and the bodies the event
 * workers POST, both rendered by one query so the two cannot drift.
 *
 * Order: an event id is drawn when its row is inserted, not when its transaction commits, so reading "ids after
 * the last one seen" would skip an event whose transaction committed after a later id was already read. The feed
 * therefore walks (feed_xid, id), the writing transaction's id first (never below the previous event of the same
 * message, so a message's events stay in sequence order), and shows only events below the event horizon
 * (`messaging_event_horizon()`, migration 0017): the oldest transaction of this database still running. No
 * transaction below it can still commit, so an event never appears behind a cursor a client already holds, and
 * nothing is written to give an event its place. A long write transaction in this database holds the feed back
 * until it ends; one in another database on the same server does not.
 *
 * Events written before 0017 were numbered by a sequencer (`position`); they come first, in that order, and the
 * cursors issued then (`p<position>`) still work.
 */
import { rfc3339Utc } from "../db/json-sql.ts";
import { messageItemJson } from "../db/message-item-sql.ts";
import type { SqlRunner } from "../db/runner.ts";
import { textArray } from "../db/sql-arrays.ts";
import { snippet } from "../domain/snippet.ts";

/** One event as the feed lists it and an endpoint receives it. */
export interface ClientEvent {
  id: string;
  type: string;
  created_at: string;
  sequence: number;
  data: Record<string, unknown>;
}

/**
 * Where a feed page starts: after the event with this `position` (numbered before migration 0017), or after the
 * event with this (feed_xid, id). Decimal text, as PostgreSQL prints them.
 */
export type FeedPosition = { position: string } | { xid: string; id: string };

/** The start of the feed: before the oldest event numbered before 0017, and so before every later one. */
export const FEED_START: FeedPosition = { position: "0" };

/*
 * The message as it was when the event was written: the row's fixed fields (addresses, body, timestamps) with the
 * event's own status, reason and provider fields, which are the parts of a message that change. A message deleted
 * since (retention, DELETE /api/conversations/{id}) leaves its id and the event's status only.
 */
export const AT_EVENT = `
  LEFT JOIN LATERAL (
    SELECT msg.id, msg.conversation_id, msg.direction, msg.channel, msg.from_addr, msg.to_addr, msg.body, msg.attachments,
           e.status, msg.timestamp, msg.subject, msg.segments, msg.encoding, msg.send_at,
           e.provider, e.provider_message_id, e.reason
      FROM messages msg WHERE msg.id = e.message_id) m ON true`;

const DETAIL = `, 'provider', m.provider, 'provider_message_id', m.provider_message_id,
  'status_reason', CASE WHEN m.status IN ('failed', 'undelivered') THEN m.reason END`;

export const EVENT_JSON = `json_build_object(
  'id', 'evt_' || replace(e.public_id::text, '-', ''), 'type', e.type, 'created_at', ${rfc3339Utc("e.created_at")}, 'sequence', e.sequence,
  'data', CASE WHEN e.message_id IS NULL THEN e.data::json
               WHEN m.id IS NULL THEN json_build_object('id', e.message_id::text, 'status', e.status, 'deleted', true)
               ELSE ${messageItemJson("m", DETAIL)} END)`;

/** The reason of a failed or undelivered message, beside the status it explains (the body promise of SPEC §10). */
export const REASON = `CASE WHEN e.status IN ('failed', 'undelivered') THEN e.reason END`;

interface EventRow {
  event: string;
  reason: string | null;
  position: string | null;
  feed_xid: string | null;
  row_id: string;
}

/** Completes a rendered event: the grapheme-aware snippet (TypeScript's part of a message item) and the reason. */
export function completeEvent(row: { event: string; reason: string | null }, snippetLength: number): ClientEvent {
  const event = JSON.parse(row.event) as ClientEvent;
  const data = event.data;
  if (typeof data.body === "string") data.snippet = snippet(data.body, snippetLength);
  if (row.reason !== null) data.reason = row.reason;
  return event;
}

/*
 * Two ordered ranges, the numbered events of before 0017 ($1: the cursor is still among them) and then the rest
 * by (feed_xid, id) below the horizon, each read on its own index, the first $5 of both together. A client at the
 * end of the feed asks again and again: the horizon is computed only when some event lies after its cursor. That
 * look asks for the first event after the cursor in feed order (ORDER BY … LIMIT 1 in a subquery, which EXISTS
 * does not flatten away), one probe of `events_order_idx`; a plain EXISTS was planned as a scan of the whole table.
 */
const PAGE = `
  WITH h AS MATERIALIZED (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM (
                               SELECT 1 FROM events WHERE feed_xid IS NOT NULL AND (feed_xid, id) > ($3::text::xid8, $4::text::bigint)
                                ORDER BY feed_xid, id LIMIT 1) next)
                THEN messaging_event_horizon() END AS horizon),
  page AS MATERIALIZED (
    (SELECT 0 AS part, * FROM events
      WHERE $1::boolean AND position > $2::text::bigint AND position IS NOT NULL AND feed_xid IS NULL
        AND ($6::text[] IS NULL OR type = ANY($6::text[]))
      ORDER BY position LIMIT $5)
    UNION ALL
    (SELECT 1 AS part, * FROM events
      WHERE feed_xid IS NOT NULL AND (feed_xid, id) > ($3::text::xid8, $4::text::bigint) AND feed_xid < (SELECT horizon FROM h)
        AND ($6::text[] IS NULL OR type = ANY($6::text[]))
      ORDER BY feed_xid, id LIMIT $5)),
  e AS (SELECT *, CASE WHEN part = 0 THEN position END AS numbered FROM page ORDER BY part, numbered, feed_xid, id LIMIT $5)
  SELECT ${EVENT_JSON}::text AS event, ${REASON} AS reason, e.position::text AS position, e.feed_xid::text AS feed_xid,
         e.id::text AS row_id
    FROM e
    ${AT_EVENT}
   ORDER BY e.part, e.numbered, e.feed_xid, e.id`;

export interface FeedPage {
  items: ClientEvent[];
  /** The place after the last item; the same place when the page is empty. */
  next: FeedPosition;
}

/** Up to `limit` events after `after`, of `types` when given, in commit order. */
export async function feedPage(sql: SqlRunner, after: FeedPosition, types: readonly string[] | null, limit: number, snippetLength: number): Promise<FeedPage> {
  const numbered = "position" in after;
  const rows = await sql.query<EventRow>(PAGE, [
    numbered,
    numbered ? after.position : "0",
    numbered ? "0" : after.xid,
    numbered ? "0" : after.id,
    limit,
    types === null ? null : textArray(types),
  ]);
  const last = rows.at(-1);
  const next: FeedPosition = !last ? after : last.feed_xid === null ? { position: last.position! } : { xid: last.feed_xid, id: last.row_id };
  return { items: rows.map((r) => completeEvent(r, snippetLength)), next };
}

/** The feed cursor as the client holds it: opaque text, strictly checked when it comes back. */
export function encodeFeedCursor(at: FeedPosition): string {
  return Buffer.from("position" in at ? `p${at.position}` : `x${at.xid}.${at.id}`).toString("base64url");
}

const INT64 = "(0|[1-9]\\d{0,18})";
const NUMBERED = new RegExp(`^p${INT64}$`);
const ORDERED = new RegExp(`^x${INT64}\\.${INT64}$`);
const INT64_MAX = 9_223_372_036_854_775_807n;

/** The place a cursor names, or null when it is not one this service issued. */
export function decodeFeedCursor(cursor: string): FeedPosition | null {
  if (cursor.length > 64 || !/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
  const text = Buffer.from(cursor, "base64url").toString("latin1");
  const numbered = NUMBERED.exec(text);
  if (numbered) return BigInt(numbered[1]!) > INT64_MAX ? null : { position: numbered[1]! };
  const ordered = ORDERED.exec(text);
  if (!ordered) return null;
  if (BigInt(ordered[1]!) > INT64_MAX || BigInt(ordered[2]!) > INT64_MAX) return null;
  return { xid: ordered[1]!, id: ordered[2]! };
}
