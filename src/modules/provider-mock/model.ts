import { z } from "zod";
import { emailAddressProblem, phoneAddressProblem } from "../../domain/address.ts";
import { attachmentList, emailSubject, type MessageLimits, rfc3339, SMS_BODY_MAX, text } from "../messages/model.ts";

const percent = z
  .number({ error: (issue) => (issue.input === undefined ? "is required" : "must be an integer from 0 to 100") })
  .int("must be an integer from 0 to 100")
  .min(0, "must be an integer from 0 to 100")
  .max(100, "must be an integer from 0 to 100");

/**
 * The fields added after the first four (SPEC §7 "newer optional fields") default to these, which are the mock's
 * old behaviour: a client that PUTs only the four original fields keeps working, and a config stored before
 * they existed still parses.
 */
export const NEWER_FIELD_DEFAULTS = { latency_ms: 0, delivery_report_pct: 0, breaker_open_secs: null } as const;

const LATENCY_MAX_MS = 60_000;

export const mockConfigSchema = z
  .object({
    timeout_pct: percent,
    error_pct: percent,
    ratelimit_pct: percent,
    seed: z
      .number({ error: "must be an integer or null" })
      .int("must be an integer or null")
      .min(0, "must be a non-negative integer or null")
      .max(2 ** 31 - 1, "must be at most 2147483647")
      .nullable()
      .meta({ description: "Makes the sequence of outcomes reproducible; null draws at random" }),
    latency_ms: z
      .number({ error: `must be an integer from 0 to ${LATENCY_MAX_MS}` })
      .int(`must be an integer from 0 to ${LATENCY_MAX_MS}`)
      .min(0, `must be an integer from 0 to ${LATENCY_MAX_MS}`)
      .max(LATENCY_MAX_MS, `must be an integer from 0 to ${LATENCY_MAX_MS}`)
      .default(NEWER_FIELD_DEFAULTS.latency_ms)
      .meta({ description: "How long each call waits before it answers, as a real provider's API would; default 0" }),
    delivery_report_pct: percent.default(NEWER_FIELD_DEFAULTS.delivery_report_pct).meta({
      description: "Share of accepted messages the mock later reports as delivered on its own; default 0",
    }),
    breaker_open_secs: z
      .number({ error: "must be an integer from 1 to 3600 or null" })
      .int("must be an integer from 1 to 3600 or null")
      .min(1, "must be an integer from 1 to 3600 or null")
      .max(3600, "must be an integer from 1 to 3600 or null")
      .nullable()
      .default(NEWER_FIELD_DEFAULTS.breaker_open_secs)
      .meta({ description: "Cool-down of the mock providers' circuit breakers in seconds (tests shorten it); null: API_BREAKER_OPEN_SECS" }),
  })
  .superRefine((c, ctx) => {
    if (c.timeout_pct + c.error_pct + c.ratelimit_pct > 100) {
      ctx.addIssue({ code: "custom", path: ["root"], message: "timeout_pct + error_pct + ratelimit_pct must not exceed 100" });
    }
  })
  .meta({ description: "Fault injection of the mock provider, shared by every instance, read at each dispatch" });

/** A parsed config: every field present. */
export type MockConfig = z.output<typeof mockConfigSchema>;
/** What a client may send, and what the configured defaults give: the newer fields may be missing. */
export type MockConfigInput = z.input<typeof mockConfigSchema>;

const required = (issue: { input: unknown }) => (issue.input === undefined ? "is required" : "must be a string");

/** `POST /api/provider/mock/inbound`: §4's shape plus `channel`; the provider id is optional here. */
export function mockInboundSchema(limits: MessageLimits) {
  return z
    .object({
      channel: z
        .string({ error: required })
        .transform((s) => s.trim().toLowerCase())
        .pipe(z.enum(["sms", "mms", "email"], { error: "must be sms, mms or email" })),
      from: text(),
      to: text(),
      body: text().refine((s) => s.trim().length > 0, "must not be empty"),
      subject: emailSubject(),
      attachments: attachmentList(limits),
      timestamp: rfc3339(),
      messaging_provider_id: text().refine((s) => s.length >= 1 && s.length <= 255, "must be 1 to 255 characters").optional(),
      xillio_id: text().refine((s) => s.length >= 1 && s.length <= 255, "must be 1 to 255 characters").optional(),
      type: z.string().optional().meta({ description: "Ignored; `channel` decides" }),
    })
    .superRefine((m, ctx) => {
      const email = m.channel === "email";
      for (const field of ["from", "to"] as const) {
        const problem = email ? emailAddressProblem(m[field]) : phoneAddressProblem(m[field]);
        if (problem) ctx.addIssue({ code: "custom", path: [field], message: problem });
      }
      if (!email && m.body.length > SMS_BODY_MAX && [...m.body].length > SMS_BODY_MAX) {
        ctx.addIssue({ code: "custom", path: ["body"], message: `must be at most ${SMS_BODY_MAX} characters` });
      }
      if (m.channel === "mms" && m.attachments.length === 0) {
        ctx.addIssue({ code: "custom", path: ["attachments"], message: "an mms message needs at least one attachment" });
      }
    })
    .meta({ description: "An inbound message injected as if a provider had delivered it" });
}

/** Our message ids as the other routes take them: a positive decimal string; a JSON number is read as one. */
const messageId = z
  .union([z.string(), z.number().int().positive()], { error: (issue) => (issue.input === undefined ? "is required" : "must be a message id") })
  .transform(String)
  .pipe(z.string().regex(/^[1-9][0-9]{0,15}$/, "must be a message id: a positive decimal integer"));

/** `POST /api/provider/mock/reports`: a delivery report as a provider would send it, naming the message one way. */
export const mockReportSchema = z
  .object({
    message_id: messageId.optional(),
    provider_message_id: text().refine((s) => s.length >= 1 && s.length <= 255, "must be 1 to 255 characters").optional(),
    status: z.enum(["delivered", "undelivered", "failed"], {
      error: (issue) => (issue.input === undefined ? "is required" : "must be delivered, undelivered or failed"),
    }),
    error_code: text()
      .refine((s) => s.length <= 64, "must be at most 64 characters")
      .nullish()
      .meta({ description: "The provider's reason, kept as the message's status_reason when it fails" }),
  })
  .superRefine((r, ctx) => {
    if ((r.message_id === undefined) === (r.provider_message_id === undefined)) {
      ctx.addIssue({ code: "custom", message: "exactly one of message_id and provider_message_id is required" });
    }
  })
  .meta({ description: "A delivery report; status only moves forward, so a late or repeated report changes nothing" });

export type MockReport = z.infer<typeof mockReportSchema>;

export const mockReportAcceptedSchema = z
  .object({
    status: z.literal("accepted"),
    id: z.string().meta({ description: "The reported message's id" }),
    message_status: z.string().meta({ description: "The message's status after the report (unchanged when the report could not move it)" }),
  })
  .meta({ description: "The report is applied, or changed nothing because the message had already moved past it" });
