// What the client app is told (SPEC §10): the event types, and which of them a subscription covers.

/** Every event type, in the order the README lists them. */
export const EVENT_TYPES = [
  "message.scheduled",
  "message.queued",
  "message.sent",
  "message.delivered",
  "message.undelivered",
  "message.failed",
  "message.canceled",
  "message.received",
  "recipient.opted_out",
  "recipient.opted_in",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** Names a subscription may list beside the types themselves: every type, or every outbound status. */
export const SUBSCRIPTION_GROUPS = ["*", "message.status"] as const;

/** Every name `events` of an endpoint may hold. */
export const SUBSCRIPTION_NAMES: readonly string[] = [...SUBSCRIPTION_GROUPS, ...EVENT_TYPES];

/** Whether `name` may appear in a subscription. */
export function isSubscriptionName(name: string): boolean {
  return SUBSCRIPTION_NAMES.includes(name);
}

/**
 * Whether an endpoint subscribed to `subscription` wants an event of `type`. `message.status` is every
 * `message.*` type but `message.received` (an inbound message is not a status of something the app sent), so
 * a status added later (`message.scheduled`, `message.canceled`) is covered without a change of subscription.
 */
export function subscriptionCovers(subscription: readonly string[], type: string): boolean {
  for (const name of subscription) {
    if (name === "*" || name === type) return true;
    if (name === "message.status" && type.startsWith("message.") && type !== "message.received") return true;
  }
  return false;
}
