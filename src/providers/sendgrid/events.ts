/**
 * SendGrid's Event Webhook body, read into what delivery reports need (SPEC §7). SendGrid posts a JSON array of
 * events, each with `event`, `sg_event_id` (unique per event: the deduplication key), `sg_message_id` (the
 * `X-Message-Id` its send answered, then `.` and a suffix of its own), `timestamp` (unix seconds) and, for
 * failures, `reason`. Only the delivery outcome matters here: `delivered` settles the message, `bounce` and
 * `dropped` fail it; `processed`, `deferred` and engagement events (open, click, …) leave its status alone.
 */

export type SendGridEventStatus = "delivered" | "undelivered" | null;

export interface SendGridEvent {
  eventId: string;
  /** The `X-Message-Id` part of `sg_message_id`: everything before its first `.`. */
  providerMessageId: string;
  status: SendGridEventStatus;
  /** SendGrid's `reason` for a bounce or a drop, bounded; null for other events. */
  reason: string | null;
  at: Date | null;
}

/** `skipped` counts events that name no message (account events carry no `sg_message_id`). */
export type ParsedSendGridEvents = { ok: true; events: SendGridEvent[]; skipped: number } | { ok: false; problem: string };

/** SendGrid batches events into posts of at most about 1 MB, a few thousand small events; more is not SendGrid. */
export const MAX_SENDGRID_EVENTS = 1000;
/** Ids and reasons longer than this are cut or refused: they end up in indexed columns and in status reasons. */
const MAX_ID_LENGTH = 256;
const MAX_REASON_LENGTH = 1000;

const STATUS_OF: Record<string, SendGridEventStatus> = {
  delivered: "delivered",
  bounce: "undelivered",
  dropped: "undelivered",
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

const usableId = (v: unknown): v is string => typeof v === "string" && v.trim().length > 0 && v.length <= MAX_ID_LENGTH;

/** A unix-seconds timestamp as a Date; anything else (missing, a string, out of range) is null rather than a refusal. */
function eventTime(v: unknown): Date | null {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) return null;
  const at = new Date(v * 1000);
  return Number.isNaN(at.getTime()) ? null : at;
}

function failureReason(status: SendGridEventStatus, v: unknown): string | null {
  if (status !== "undelivered" || typeof v !== "string" || v.trim() === "") return null;
  return v.trim().slice(0, MAX_REASON_LENGTH);
}

/**
 * Validates a parsed event webhook body and maps each event. The whole batch is refused when its shape is wrong
 * (not an array, too long, an element that is not an object or lacks a string `event` or `sg_event_id`), so
 * SendGrid's retry can bring it back after a fix instead of half of it being applied. An event without a usable
 * `sg_message_id` is skipped, not refused: SendGrid's account events have none, and refusing them would make it
 * retry the whole batch for ever. Unknown event names are kept with a null status: the caller still records
 * their ids as seen.
 */
export function parseSendGridEvents(raw: unknown): ParsedSendGridEvents {
  if (!Array.isArray(raw)) return { ok: false, problem: "the body is not a JSON array of events" };
  if (raw.length > MAX_SENDGRID_EVENTS) return { ok: false, problem: `more than ${MAX_SENDGRID_EVENTS} events in one post` };
  const events: SendGridEvent[] = [];
  let skipped = 0;
  for (const [i, item] of raw.entries()) {
    if (!isRecord(item)) return { ok: false, problem: `event ${i} is not an object` };
    const { event, sg_event_id: eventId, sg_message_id: messageId } = item;
    if (typeof event !== "string") return { ok: false, problem: `event ${i} has no string "event"` };
    if (!usableId(eventId)) return { ok: false, problem: `event ${i} has no usable "sg_event_id"` };
    const providerMessageId = usableId(messageId) ? messageId.split(".", 1)[0]!.trim() : "";
    if (providerMessageId === "") {
      skipped += 1;
      continue;
    }
    const status = Object.hasOwn(STATUS_OF, event) ? STATUS_OF[event]! : null;
    events.push({ eventId, providerMessageId, status, reason: failureReason(status, item.reason), at: eventTime(item.timestamp) });
  }
  return { ok: true, events, skipped };
}
