/**
 * What Twilio's message status callbacks mean for a message (the route that receives them is
 * src/modules/provider-webhooks/twilio.ts; it verifies the signature and applies the report).
 */

/** The statuses a delivery report can move a message to (delivery/reports.ts takes these). */
export type TwilioReportedStatus = "sent" | "delivered" | "undelivered" | "failed";

/** Twilio's message statuses that report a delivery; the others (queued, sending, accepted, …) change nothing. */
const TWILIO_REPORTED: Readonly<Record<string, TwilioReportedStatus>> = {
  sent: "sent",
  delivered: "delivered",
  undelivered: "undelivered",
  failed: "failed",
};

/** The report a `MessageStatus` makes, or undefined for one that reports no delivery. */
export const twilioReportedStatus = (messageStatus: string): TwilioReportedStatus | undefined =>
  Object.hasOwn(TWILIO_REPORTED, messageStatus) ? TWILIO_REPORTED[messageStatus] : undefined;
