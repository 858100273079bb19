import type { z } from "zod";
import { phoneAddressProblem } from "../../domain/address.ts";
import { parseRfc3339 } from "../../domain/timestamp.ts";

/** A send body as the SMS model outputs it. */
export interface SmsBody {
  from: string;
  to: string;
  type: "sms" | "mms";
  body: string;
  attachments: string[];
  timestamp: string;
  send_at?: string | null | undefined;
}

const SMS_KEYS = new Set(["from", "to", "type", "body", "attachments", "timestamp", "send_at"]);

/**
 * The common SMS send, accepted without the model: an object of the model's keys only, with two phone
 * numbers, type `sms` (any case, padded), a body of at most `bodyMax` UTF-16 units, no attachments (null,
 * absent or []), a timestamp, and no `send_at` (null or absent). Returns what the model would output for it, or
 * undefined for anything else (MMS, attachments, a schedule, a long body, any fault), which the model then
 * judges and explains. It accepts nothing the model refuses: test/modules/messages/plain-sms.test.ts holds it to
 * the model's answers.
 */
export function plainSms(value: unknown, bodyMax: number): SmsBody | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  for (const key in v) if (!SMS_KEYS.has(key)) return undefined;
  const { from, to, type, body, attachments, timestamp, send_at } = v;
  if (!isPhone(from) || !isPhone(to)) return undefined;
  if (typeof type !== "string" || type.trim().toLowerCase() !== "sms") return undefined;
  if (typeof body !== "string" || body.length > bodyMax || !plainText(body) || body.trim().length === 0) return undefined;
  if (!(attachments === null || attachments === undefined || (Array.isArray(attachments) && attachments.length === 0))) return undefined;
  if (typeof timestamp !== "string" || !plainText(timestamp) || parseRfc3339(timestamp) === null) return undefined;
  if (send_at !== null && send_at !== undefined) return undefined;
  const out: SmsBody = { from, to, type: "sms", body, attachments: [], timestamp };
  if ("send_at" in v) out.send_at = send_at;
  return out;
}

const plainText = (s: string) => !s.includes("\0");

function isPhone(s: unknown): s is string {
  return typeof s === "string" && plainText(s) && s.trim().length > 0 && phoneAddressProblem(s) === null;
}

/**
 * Makes `schema` accept what `accept` recognises without running its checks, as Elysia validates a body through
 * the Standard Schema face (`~standard.validate`); everything else, and every refusal with its issues, is still
 * the schema's own. The schema is unchanged for everything else that reads it (the OpenAPI document, `parse`).
 */
export function acceptFirst<S extends z.ZodType>(schema: S, accept: (value: unknown) => z.output<S> | undefined): S {
  const standard = schema["~standard"];
  const validate = standard.validate;
  schema["~standard"] = {
    ...standard,
    validate: (value: unknown) => {
      const accepted = accept(value);
      return accepted === undefined ? validate(value) : { value: accepted };
    },
  };
  return schema;
}
