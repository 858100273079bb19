/**
 * The provider webhooks' public face: what the routes call once a body is read. Each provider's check (Twilio's
 * signature, SendGrid's signed events, the Inbound Parse URL's basic credentials) comes first, then what the request
 * says becomes a delivery report (delivery/reports.ts) or an inbound message (the messages module's receive path).
 * Nothing is stored for a request that fails its check, and every request naming a configured provider is counted
 * by outcome. One file per provider's webhook: twilio.ts, sendgrid-events.ts, sendgrid-inbound.ts; webhook.ts holds
 * what they share.
 */
import type { SqlRunner } from "../../db/runner.ts";
import { runPeriodically } from "../../db/periodic.ts";
import { deleteEventIdsOlderThan } from "./repository.ts";
import { EVENT_ID_RETENTION_HOURS } from "./sendgrid-events.ts";

export { EVENT_ID_RETENTION_HOURS, SENDGRID_EVENT_TOLERANCE_SECS, sendgridEvents } from "./sendgrid-events.ts";
export { authorizeInboundParse, sendgridInbound } from "./sendgrid-inbound.ts";
export { twilioInbound, twilioStatus } from "./twilio.ts";
export { configuredProvider, type ProviderWebhookDeps } from "./webhook.ts";

/**
 * Forgets SendGrid event ids older than their window now and every ten minutes (every instance may: the DELETE
 * is idempotent). Returns a function that stops it.
 */
export function scheduleProviderEventPurge(
  sql: SqlRunner,
  onPurge: (result: { deleted: number } | { error: unknown }) => void,
  intervalMs = 10 * 60 * 1000,
): () => void {
  return runPeriodically(() => deleteEventIdsOlderThan(sql, EVENT_ID_RETENTION_HOURS), (r) => onPurge("error" in r ? r : { deleted: r.value }), intervalMs);
}
