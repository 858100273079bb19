import { z } from "zod";
import {
  attachmentList,
  emailAddress,
  emailSubject,
  type MessageLimits,
  messageType,
  nonEmpty,
  phoneAddress,
  requireMmsAttachment,
  rfc3339,
  smsBody,
  text,
} from "../messages/model.ts";

const providerId = (name: string) =>
  text()
    .refine((s) => s.trim().length > 0, "must not be empty")
    .refine((s) => s.length <= 255, "must be at most 255 characters")
    .meta({ description: `The provider's id of this message (${name}); a repeat is answered with the first message` });

/** Inbound webhook bodies of SPEC §4, built from the configured limits. */
export function webhookModels(limits: MessageLimits) {
  return {
    "webhooks.sms": z
      .object({
        from: phoneAddress(),
        to: phoneAddress(),
        type: messageType(),
        messaging_provider_id: providerId("messaging_provider_id"),
        body: smsBody(),
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
        body: nonEmpty(),
        subject: emailSubject(),
        attachments: attachmentList(limits),
        timestamp: rfc3339(),
      })
      .meta({ description: "An inbound email as the email provider delivers it" }),
  };
}
