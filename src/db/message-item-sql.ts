import { rfc3339Utc } from "./json-sql.ts";

/**
 * The one SQL builder of a message item (SPEC §6): PostgreSQL renders the row as the item's JSON (everything
 * but the grapheme-aware snippet, which `withSnippet` in read.ts adds), both for list pages and for a single
 * message, so the two cannot drift; test/modules/messages/item-shapes.test.ts holds them to the model.
 * `extra` appends key/value pairs (with a leading comma) that only the single message shows.
 */
export const messageItemJson = (m: string, extra = "") => `json_build_object(
  'id', ${m}.id::text, 'conversation_id', ${m}.conversation_id::text, 'direction', ${m}.direction,
  'channel', ${m}.channel, 'type', ${m}.channel, 'from', ${m}.from_addr, 'to', ${m}.to_addr, 'body', ${m}.body,
  'attachments', ${m}.attachments, 'status', ${m}.status, 'timestamp', ${rfc3339Utc(`${m}.timestamp`)},
  'subject', ${m}.subject, 'segments', ${m}.segments, 'encoding', ${m}.encoding,
  'send_at', ${rfc3339Utc(`${m}.send_at`)}${extra})`;
