/**
 * The events as the client app reads them (SPEC §10): the pull feed `GET /api/events` and the bodies the event
 * workers POST, both rendered by one query so the two cannot drift.
 *
 * Order: an event id is drawn when its row is inserted, not when its transaction commits, so reading "ids after
 * the last one seen" would skip an event whose transaction committed after a later id was already read. The feed
 * therefore walks `position`, which the event workers' sequencer (deliveries.ts routeEvents) gives each event
 * once it has committed, always above every position given before: an event never appears behind a cursor a
 * client already holds. (Reading by transaction id below the oldest running one would need no sequencer, but any
 * long transaction on the PostgreSQL server, in any database, would hold the feed back.) The price is the
 * sequencer's pace, which is why a feed read runs a round of it first (modules/events/service.ts).
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

/** Where a feed page starts: after the event with this position (decimal text). */
export type FeedPosition = string;

export const FEED_START: FeedPosition = "0";

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

const PAGE = `
  SELECT ${EVENT_JSON}::text AS event, ${REASON} AS reason, e.position::text AS position, e.id::text AS row_id
    FROM (SELECT * FROM events
           WHERE position > $1::text::bigint AND position IS NOT NULL
             AND ($2::text[] IS NULL OR type = ANY($2::text[]))
           ORDER BY position LIMIT $3) e
    ${AT_EVENT}
   ORDER BY e.position`;

export interface FeedPage {
  items: ClientEvent[];
  /** The position after the last item; the same position when the page is empty. */
  next: FeedPosition;
}

/** Up to `limit` events after `after`, of `types` when given, in commit order. */
export async function feedPage(sql: SqlRunner, after: FeedPosition, types: readonly string[] | null, limit: number, snippetLength: number): Promise<FeedPage> {
  const rows = await sql.query<EventRow>(PAGE, [after, types === null ? null : textArray(types), limit]);
  const last = rows.at(-1);
  return { items: rows.map((r) => completeEvent(r, snippetLength)), next: last?.position ?? after };
}

/** The feed cursor as the client holds it: opaque text, strictly checked when it comes back. */
export function encodeFeedCursor(position: FeedPosition): string {
  return Buffer.from(`p${position}`).toString("base64url");
}

const POSITION = /^p(0|[1-9]\d{0,18})$/;

/** The position a cursor names, or null when it is not one this service issued. */
export function decodeFeedCursor(cursor: string): FeedPosition | null {
  if (cursor.length > 64 || !/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
  const match = POSITION.exec(Buffer.from(cursor, "base64url").toString("latin1"));
  if (!match) return null;
  if (BigInt(match[1]!) > 9_223_372_036_854_775_807n) return null;
  return match[1]!;
}
