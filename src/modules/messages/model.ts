import { z } from "zod";
import { MESSAGE_STATUSES } from "../../domain/message-status.ts";
import { pageMeta, paginationQuery } from "../../http/pagination.ts";
import { emailAddressProblem, emailSenderProblem, phoneAddressProblem } from "../../domain/address.ts";
import { attachmentUrlProblem } from "../../domain/attachment-url.ts";
import { DEFAULT_SCHEDULE_MAX_DAYS, sendAtProblem } from "../../domain/schedule.ts";
import { parseRfc3339 } from "../../domain/timestamp.ts";
import { acceptFirst, plainSms } from "./plain-sms.ts";

/** The longest concatenated SMS (SPEC §3). */
export const SMS_BODY_MAX = 1600;
export const ATTACHMENT_URL_MAX = 2048;

export interface MessageLimits {
  maxAttachments: number;
  /** How far ahead a send's `send_at` may be (MESSAGING_SCHEDULE_MAX_DAYS); default 35. */
  scheduleMaxDays?: number;
}

/** Any text field: PostgreSQL text cannot hold NUL, so it is refused here rather than failing the insert. */
export const text = () =>
  z
    .string({ error: (issue) => (issue.input === undefined ? "is required" : "must be a string") })
    .refine((s) => !s.includes("\0"), "must not contain NUL characters");

export const nonEmpty = () => text().refine((s) => s.trim().length > 0, "must not be empty");

/** A refinement that reports a domain rule's own sentence (which bound, or which shape, was missed). */
const ruleOf = (problem: (s: string) => string | null) => (s: string, ctx: z.RefinementCtx) => {
  const message = problem(s);
  if (message) ctx.addIssue({ code: "custom", message });
};

export const phoneAddress = () => nonEmpty().superRefine(ruleOf(phoneAddressProblem));

export const emailAddress = () => nonEmpty().superRefine(ruleOf(emailAddressProblem));

/** An email `from`: an address, or `Name <address>` (SPEC §3); the conversation uses the address. */
export const emailSender = () =>
  nonEmpty()
    .superRefine(ruleOf(emailSenderProblem))
    .meta({ description: "An email address, or a display name and an address (`Example <noreply@example.com>`)" });

/**
 * RFC 5322's line limit: a header line holds at most 998 characters. Counted in characters (code points), not
 * octets: a provider encodes a non-ASCII subject as encoded words and folds it, so the limit is a sanity bound.
 */
export const SUBJECT_MAX = 998;

/**
 * An email subject: trimmed, one line (a CR or LF could forge a header on the SMTP path), at most SUBJECT_MAX
 * characters. Blank, null or absent all mean "none": the stored subject is then the body's snippet (write.ts).
 */
export const emailSubject = () =>
  text()
    .transform((s) => s.trim())
    .refine((s) => !/[\r\n]/.test(s), "must be a single line: no CR or LF")
    .refine((s) => s.length <= SUBJECT_MAX || [...s].length <= SUBJECT_MAX, `must be at most ${SUBJECT_MAX} characters`)
    .nullish()
    .meta({ description: `At most ${SUBJECT_MAX} characters on one line, trimmed; blank, null or absent: the body's first 78 characters` });

export const smsBody = () =>
  nonEmpty().refine((s) => s.length <= SMS_BODY_MAX || [...s].length <= SMS_BODY_MAX, `must be at most ${SMS_BODY_MAX} characters`);

export const messageType = () =>
  z
    .string({ error: (issue) => (issue.input === undefined ? "is required" : "must be a string") })
    .transform((s) => s.trim().toLowerCase())
    .pipe(z.enum(["sms", "mms"], { error: "must be sms or mms" }))
    .meta({ description: "sms or mms, any letter case" });

export const rfc3339 = () =>
  text()
    .refine((s) => parseRfc3339(s) !== null, "must be an RFC 3339 date-time in the years 0001 to 9999 once its offset is applied, such as 2024-11-01T14:00:00Z")
    .meta({ format: "date-time", description: "RFC 3339, the client's send time" });

/**
 * `send_at` of a send (SPEC §3): RFC 3339, at most `maxDays` ahead and not more than 60 s in the past, checked
 * against the clock when the request arrives. Null or absent: send at once.
 */
export const sendAt = (maxDays: number) =>
  text()
    .superRefine((s, ctx) => {
      const at = parseRfc3339(s);
      const problem = at === null ? "must be an RFC 3339 date-time such as 2024-11-01T14:00:00Z" : sendAtProblem(at, Date.now(), maxDays);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .nullish()
    .meta({
      format: "date-time",
      description:
        `Schedules the message (status \`scheduled\`): RFC 3339, at most ${maxDays} days ahead, not more than 60 s in the past ` +
        "(a time already past is sent at once). Cancel with POST /api/messages/{id}/cancel until a worker claims it.",
    });

export const attachmentList = (limits: MessageLimits) =>
  z
    .array(
      z.unknown().superRefine((value, ctx) => {
        const problem = attachmentUrlProblem(value, ATTACHMENT_URL_MAX);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      }),
      { error: "must be a list of URLs or null" },
    )
    .max(limits.maxAttachments, `must hold at most ${limits.maxAttachments} attachments`)
    .nullish()
    .transform((list) => (list ?? []) as string[])
    .meta({ description: `Absolute http(s) URLs, at most ${limits.maxAttachments}; null or absent means none` });

/** SPEC §3: `mms` needs at least one attachment (null, absent and [] all fail). */
export function requireMmsAttachment(value: { type: string; attachments: string[] }, ctx: z.RefinementCtx): void {
  if (value.type === "mms" && value.attachments.length === 0) {
    ctx.addIssue({ code: "custom", path: ["attachments"], message: "an mms message needs at least one attachment" });
  }
}

/** Request and response schemas of the send routes, built from the configured limits. */
export function messageModels(limits: MessageLimits) {
  const maxDays = limits.scheduleMaxDays ?? DEFAULT_SCHEDULE_MAX_DAYS;
  const sendSms = z
    .object({
      from: phoneAddress(),
      to: phoneAddress(),
      type: messageType(),
      body: smsBody(),
      attachments: attachmentList(limits),
      timestamp: rfc3339(),
      send_at: sendAt(maxDays),
    })
    .superRefine(requireMmsAttachment)
    .meta({ description: "An outbound SMS or MMS" });
  // The common send (one SMS, no media, no schedule) skips the model's checks per request; what it does not
  // recognise, every refusal included, is the model's (plain-sms.ts).
  acceptFirst(sendSms, (value) => plainSms(value, SMS_BODY_MAX));

  const sendEmail = z
    .object({
      from: emailSender(),
      to: emailAddress(),
      body: nonEmpty().meta({ description: "Stored verbatim; may contain HTML" }),
      subject: emailSubject(),
      attachments: attachmentList(limits),
      timestamp: rfc3339(),
      send_at: sendAt(maxDays),
    })
    .meta({ description: "An outbound email" });

  return { "messages.sendSms": sendSms, "messages.sendEmail": sendEmail, ...messageResponseModels };
}

export const acceptedSchema = z
  .object({
    status: z.literal("accepted"),
    id: z.string().meta({ description: "Message id (decimal string)" }),
    conversation_id: z.string(),
    duplicate: z.boolean().optional().meta({ description: "Webhooks only: true when a provider delivered this message before; nothing new was stored" }),
  })
  .meta({ description: "The message is committed: stored with its conversation update (and delivery job) before this answer" });

export const messageItemSchema = z.object({
  id: z.string(),
  conversation_id: z.string(),
  direction: z.enum(["outbound", "inbound"]),
  channel: z.enum(["sms", "mms", "email"]),
  type: z.enum(["sms", "mms", "email"]).meta({ description: "Same as channel, kept for older clients" }),
  from: z.string(),
  to: z.string(),
  body: z.string(),
  snippet: z.string(),
  attachments: z.array(z.string()),
  status: z.string(),
  timestamp: z.string(),
  send_at: z
    .string()
    .nullable()
    .meta({ description: "When a scheduled message is (or was) due; null for one sent at once" }),
  subject: z.string().nullable().meta({ description: "Email only: the given subject or the body's first 78 characters; null for sms/mms" }),
  segments: z.number().int().nullable().meta({ description: "SMS/MMS only: the parts a carrier sends for the body; null for email" }),
  encoding: z.enum(["GSM-7", "UCS-2"]).nullable().meta({ description: "SMS/MMS only: the body's encoding; null for email" }),
});

export const deliveryAttemptSchema = z.object({
  attempt: z.number().int(),
  provider: z.string(),
  outcome: z.string(),
  status_code: z.number().int().nullable(),
  error: z.string().nullable(),
  duration_ms: z.number().int(),
  started_at: z.string(),
});

export const messageDetailSchema = messageItemSchema.extend({
  provider: z.string().nullable().meta({ description: "The provider that accepted an outbound message; null until one did" }),
  provider_message_id: z.string().nullable().meta({ description: "The id the provider gave the message; null until accepted" }),
  status_reason: z.string().nullable().meta({ description: "Why the message is failed or undelivered; null otherwise" }),
  attempts: z.array(deliveryAttemptSchema),
});

/** `GET /api/messages`: the status to list (required) with the usual `page`/`pageSize`/`cursor`. */
export const byStatusQuery = z
  .object({
    status: z
      .enum(MESSAGE_STATUSES as [string, ...string[]], { error: `must be one of ${MESSAGE_STATUSES.join(", ")}` })
      .meta({ description: "The status to list: `scheduled` shows what waits for its send_at, `queued` what waits for a worker" }),
  })
  .and(paginationQuery);

export type ByStatusQuery = z.output<typeof byStatusQuery>;

export const messageResponseModels = {
  "messages.accepted": acceptedSchema,
  "messages.item": messageItemSchema,
  "messages.detail": messageDetailSchema,
  "messages.page": z.object({ items: z.array(messageItemSchema), meta: pageMeta }),
};

export type Accepted = z.infer<typeof acceptedSchema>;
export type MessageItem = z.infer<typeof messageItemSchema>;
export type MessageDetail = z.infer<typeof messageDetailSchema>;
