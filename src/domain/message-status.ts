// The lifecycle of a message's status (SPEC §1): it only ever moves forward.

/** Where a message is in its life; `received` is the only inbound status. */
export type MessageStatus =
  | "scheduled"
  | "queued"
  | "sending"
  | "sent"
  | "delivered"
  | "failed"
  | "undelivered"
  | "canceled"
  | "received";

/** Every status, for schemas and exhaustive checks. */
export const MESSAGE_STATUSES: readonly MessageStatus[] = [
  "scheduled",
  "queued",
  "sending",
  "sent",
  "delivered",
  "failed",
  "undelivered",
  "canceled",
  "received",
];

/**
 * The statuses each one may move to. Forward skips are allowed
 * (`queued → sent`, `sending → delivered`) because provider reports race the
 * delivery engine and a later truth must not be dropped. `failed` and
 * `undelivered` are both reachable from every non-terminal outbound status:
 * `undelivered` is normally reported after `sent`, but a carrier receipt can
 * arrive before the engine records `sent`, and refusing it would leave the
 * message looking pending forever.
 *
 * `scheduled` waits for its `send_at`, then moves to `queued` (or straight to `failed` when its recipient
 * opted out meanwhile). `canceled` is reachable only from `scheduled` and `queued`: once a worker claimed a
 * message (`sending`) the provider may already have it, so taking it back would be a lie.
 */
const NEXT: Readonly<Record<MessageStatus, readonly MessageStatus[]>> = {
  scheduled: ["queued", "failed", "canceled"],
  queued: ["sending", "sent", "delivered", "failed", "undelivered", "canceled"],
  sending: ["sent", "delivered", "failed", "undelivered"],
  sent: ["delivered", "failed", "undelivered"],
  delivered: [],
  failed: [],
  undelivered: [],
  canceled: [],
  received: [],
};

/**
 * Decides whether a status update may be applied, so that a late or
 * repeated provider report never moves a message backwards and a repeat of
 * the current status is recognised as a no-op rather than a change.
 */
export function canTransition(from: MessageStatus, to: MessageStatus): boolean {
  return NEXT[from].includes(to);
}

/**
 * A terminal status never changes again, so the delivery engine can stop
 * retrying and drop any later report about the message.
 */
export function isTerminalStatus(status: MessageStatus): boolean {
  return NEXT[status].length === 0;
}

/**
 * Whether a message in this status may still be canceled (SPEC §3): only one no worker has taken yet. A
 * `queued` one may still lose to a claim; the cancel statement decides that, this only rules out the rest.
 */
export function isCancelable(status: MessageStatus): boolean {
  return canTransition(status, "canceled");
}
