import { z } from "zod";
import { EVENT_TYPES, isSubscriptionName, SUBSCRIPTION_NAMES } from "../../domain/event-types.ts";

/** Longest endpoint URL accepted (as for attachment URLs). */
const URL_MAX = 2048;

const endpointUrl = () =>
  z
    .string({ error: (issue) => (issue.input === undefined ? "is required" : "must be a string") })
    .trim()
    .max(URL_MAX, `must be at most ${URL_MAX} characters`)
    .refine((s) => /^https?:\/\//i.test(s) && URL.canParse(s), "must be an absolute https URL")
    .meta({ description: "Where events are POSTed; https (http only when MESSAGING_EGRESS_ALLOW_HTTP), and the egress guard must allow its host" });

export const endpointCreateSchema = z.object({
  url: endpointUrl(),
  events: z
    .array(z.string({ error: "must be a list of event type names" }).refine(isSubscriptionName, `must each be one of ${SUBSCRIPTION_NAMES.join(", ")}`), {
      error: "must be a list of event type names",
    })
    .min(1, "must name at least one event type (or \"*\")")
    .max(20, "must name at most 20 event types")
    .meta({ description: "Types to receive: any of the event types, `message.status` (every message.* type but message.received) or `*` (all)" }),
  description: z.string({ error: "must be a string" }).max(500, "must be at most 500 characters").nullish(),
});

export const endpointItemSchema = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(z.string()),
  description: z.string().nullable(),
  created_at: z.string(),
  disabled_at: z.string().nullable().meta({ description: "Set when 410 Gone or failing for MESSAGING_EVENT_DISABLE_AFTER_HOURS disabled it; POST …/enable resumes it" }),
  disabled_reason: z.string().nullable(),
  failing_since: z.string().nullable().meta({ description: "Since when every delivery to it has failed (null after any success)" }),
  last_delivery: z
    .object({ at: z.string(), outcome: z.enum(["delivered", "failed", "gone"]), status_code: z.number().nullable(), error: z.string().nullable() })
    .nullable(),
  pending: z.number().meta({ description: "Events routed to it and not yet delivered" }),
});

export const endpointCreatedSchema = endpointItemSchema.extend({
  secret: z.string().meta({ description: "The signing secret (whsec_…): shown in this answer only" }),
});

export const secretRotatedSchema = z.object({
  id: z.string(),
  secret: z.string().meta({ description: "The new signing secret, shown once; the previous one signs beside it until previous_secret_expires_at" }),
  previous_secret_expires_at: z.string().nullable(),
});

export const eventSchema = z.object({
  id: z.string().meta({ description: "evt_…: receivers deduplicate by it (delivery is at-least-once)" }),
  type: z.enum(EVENT_TYPES),
  created_at: z.string().meta({ description: "When the change it describes committed's transaction wrote it" }),
  sequence: z.number().meta({ description: "Per message (per recipient pair for recipient.*), from 1" }),
  data: z.record(z.string(), z.unknown()).meta({
    description: "message.*: the message item of GET /api/messages/{id} without attempts, as of this event, plus reason when failed/undelivered; recipient.*: the opt-out (from, to, source, reason, message_id)",
  }),
});

export const eventsQuery = z.object({
  after: z.string({ error: "after must be given once" }).min(1, "after must not be empty").optional().meta({ description: "next_cursor of the previous page; absent: from the oldest event kept" }),
  // Elysia hands a comma-separated value over as a list; either form is read as one list of names.
  types: z
    .union([z.string(), z.array(z.string())], { error: "types must be a comma-separated list" })
    .transform((v) => (Array.isArray(v) ? v.join(",") : v))
    .optional()
    .meta({ description: "Comma-separated event types (message.status and * as in subscriptions)" }),
  limit: z
    .string({ error: "limit must be given once" })
    .regex(/^\d{1,4}$/, "limit must be an integer from 1 to 1000")
    .transform(Number)
    .refine((n) => n >= 1 && n <= 1000, "limit must be an integer from 1 to 1000")
    .optional(),
});

export type EventsQuery = z.output<typeof eventsQuery>;

export const eventModels = {
  "events.endpointCreate": endpointCreateSchema,
  "events.endpoint": endpointItemSchema,
  "events.endpointCreated": endpointCreatedSchema,
  "events.endpointList": z.object({ items: z.array(endpointItemSchema) }),
  "events.secretRotated": secretRotatedSchema,
  "events.page": z.object({ items: z.array(eventSchema), next_cursor: z.string() }),
};
