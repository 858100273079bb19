import { z } from "zod";
import { attachmentList, emailSubject, type MessageLimits, phoneAddress, text } from "../messages/model.ts";

/** The four provider webhooks, as the metrics name them. */
export type WebhookKind = "twilio_status" | "twilio_inbound" | "sendgrid_events" | "sendgrid_inbound";

/**
 * What became of one webhook request: stored or applied (`accepted`), already seen (`duplicate`), a delivery report
 * naming no message of ours (`unmatched`), refused for its credentials (`unauthorized`) or its content (`invalid`).
 */
export type WebhookOutcome = "accepted" | "duplicate" | "unmatched" | "unauthorized" | "invalid";

/** The answer Twilio expects to an inbound message when nothing is to be sent back: empty TwiML. */
export const EMPTY_TWIML = `<?xml version="1.0" encoding="UTF-8"?><Response/>`;

/** Twilio's ids are 34 characters; the bound only keeps garbage out of indexed columns. */
const providerId = () =>
  text()
    .refine((s) => s.trim().length > 0, "must not be empty")
    .refine((s) => s.length <= 255, "must be at most 255 characters");

/** The fields of a Twilio message status callback that a delivery report needs (Twilio sends many more). */
export const twilioStatusSchema = z.object({
  MessageSid: providerId(),
  MessageStatus: text().transform((s) => s.trim().toLowerCase()),
  ErrorCode: text().optional(),
});

/**
 * The fields of Twilio's incoming-message webhook that make a message. `Body` may be empty when media came alone;
 * the media arrive as `MediaUrl0` … `MediaUrl{NumMedia-1}`, gathered into `attachments` before validation.
 */
export const twilioInboundSchema = (limits: MessageLimits) =>
  z.object({
    MessageSid: providerId(),
    From: phoneAddress(),
    To: phoneAddress(),
    Body: text().default(""),
    attachments: attachmentList(limits),
  });

/**
 * SendGrid Inbound Parse's default (not raw) form: the parsed addresses, subject, text and HTML parts, and the
 * original header block (where the Message-ID is). Attachments arrive as files and are not kept.
 */
export const sendgridInboundSchema = z.object({
  from: text(),
  to: text().default(""),
  subject: emailSubject(),
  text: text().default(""),
  html: text().default(""),
  headers: text().default(""),
  envelope: text().optional(),
});

export type TwilioStatusForm = z.infer<typeof twilioStatusSchema>;
export type TwilioInboundForm = z.infer<ReturnType<typeof twilioInboundSchema>>;
export type SendGridInboundForm = z.infer<typeof sendgridInboundSchema>;
