/**
 * SendGrid's signed Event Webhook: batches of delivery events, verified with the provider's configured
 * `event_verification_key` and applied once per `sg_event_id`.
 */
import { AppError, validationFailed } from "../../http/errors.ts";
import { jsonTextProblem } from "../../http/json-text.ts";
import type { RawBody } from "../../http/raw-body.ts";
import { parseSendGridEvents } from "../../providers/sendgrid/events.ts";
import { SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER, verifySendGridEvent } from "../../providers/sendgrid/signature.ts";
import { recordEventIds, seenEventIds } from "./repository.ts";
import { applyReport, configuredProvider, counted, decodeUtf8, nowSecs, type ProviderWebhookDeps, refused } from "./webhook.ts";

/**
 * How old a signed SendGrid batch may be (and how far ahead of our clock). SendGrid documents no window and retries
 * a failed post for up to a day; two days keep its retries and refuse older replays, and event ids are remembered
 * longer than that (EVENT_ID_RETENTION_HOURS), so a batch that still verifies is always recognised when seen twice.
 */
export const SENDGRID_EVENT_TOLERANCE_SECS = 2 * 24 * 3600;
export const EVENT_ID_RETENTION_HOURS = 72;

/** The body of an event post as JSON, under the same text rules as every JSON body of the API. */
function eventJson(body: RawBody): unknown {
  const text = decodeUtf8(body.bytes);
  const problem = text.trim() === "" ? "request body is empty; a JSON array of events is expected" : jsonTextProblem(text);
  if (problem) throw new AppError("invalid_json", problem);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new AppError("invalid_json", `request body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * A signed Event Webhook post: each event not seen before becomes a delivery report of the message whose
 * `X-Message-Id` its `sg_message_id` starts with (`processed`, `deferred` and engagement events report nothing).
 * Events are applied before their ids are remembered: a crash in between makes SendGrid's retry apply them again,
 * which changes nothing (statuses only move forward). Events naming no message of ours are skipped.
 */
export function sendgridEvents(deps: ProviderWebhookDeps, name: string, request: Request, body: RawBody): Promise<void> {
  const provider = configuredProvider(deps, "sendgrid", name);
  return counted(deps, name, "sendgrid_events", async () => {
    const message = "missing or invalid signed event webhook headers";
    const key = provider.eventVerificationKey;
    if (key === undefined) throw refused(message, `provider ${name}: no event_verification_key is configured, so no event post can verify`);
    const signature = request.headers.get(SENDGRID_SIGNATURE_HEADER);
    const timestamp = request.headers.get(SENDGRID_TIMESTAMP_HEADER);
    if (!verifySendGridEvent(key, signature, timestamp, body.bytes, nowSecs(deps), SENDGRID_EVENT_TOLERANCE_SECS)) {
      throw refused(message, `provider ${name}: SendGrid event signature missing, stale or not matching the configured key`);
    }
    const parsed = parseSendGridEvents(eventJson(body));
    if (!parsed.ok) throw validationFailed([{ path: "root", message: parsed.problem }]);
    const ids = [...new Set(parsed.events.map((e) => e.eventId))];
    const seen = await seenEventIds(deps.sql, name, ids);
    const fresh = parsed.events.filter((e) => !seen.has(e.eventId));
    for (const event of fresh) {
      if (event.status === null) continue;
      await applyReport(deps, name, { providerMessageId: event.providerMessageId, status: event.status, errorCode: event.reason });
    }
    await recordEventIds(deps.sql, name, [...new Set(fresh.map((e) => e.eventId))]);
    return [fresh.length === 0 && parsed.events.length > 0 ? "duplicate" : "accepted", undefined];
  });
}
