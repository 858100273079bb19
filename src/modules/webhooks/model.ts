import { z } from "zod";
import {
  attachmentList,
  emailAddress,
  type MessageLimits,
  phoneAddress,
  requireMmsAttachment,
  rfc3339,
  SMS_BODY_MAX,
  text,
} from "../messages/model.ts";

const providerId = (name: string) =>
  text()
    .refine((s) => s.trim().length > 0, "must not be empty")
    .refine((s) => s.length <= 255, "must be at most 255 characters")
    .meta({ description: `The provider's id of this message (${name}); a repeat is answered with the first message` });

const bodyText = (max?: number) =>
  text()
    .refine((s) => s.trim().length > 0, "must not be empty")
    .refine((s) => max === undefined || s.length <= max || [...s].length <= max, `must be at most ${max} characters`);

const smsType = z
  .string({ error: (issue) => (issue.input === undefined ? "is required" : "must be a string") })
  .transform((s) => s.trim().toLowerCase())
  .pipe(z.enum(["sms", "mms"], { error: "must be sms or mms" }));

/** Inbound webhook bodies of SPEC §4, built from the configured limits. */
export function webhookModels(limits: MessageLimits) {
  return {
    "webhooks.sms": z
      .object({
        from: phoneAddress(),
        to: phoneAddress(),
        type: smsType,
        messaging_provider_id: providerId("messaging_provider_id"),
        body: bodyText(SMS_BODY_MAX),
        attachments: attachmentList(limits),
        timestamp: rfc3339(),
      })
      .superRefine(requireMmsAttachment)
      .meta({ description: "An inbound SMS or MMS as the SMS provider delivers it" }),
    "webhooks.email": z
      .object({
        from: emailAddress(),
        to: emailAddress(),
        xillio_id: providerId("xillio_id"),
        body: bodyText(),
        attachments: attachmentList(limits),
        timestamp: rfc3339(),
      })
      .meta({ description: "An inbound email as the email provider delivers it" }),
  };
}
