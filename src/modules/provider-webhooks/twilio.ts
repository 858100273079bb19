/**
 * Twilio's webhooks: message status callbacks and incoming messages, both form-encoded and signed with
 * `X-Twilio-Signature`, which is checked before anything in them is read.
 */
import { formatTimestamp } from "../../domain/timestamp.ts";
import { validationFailed } from "../../http/errors.ts";
import type { RawBody } from "../../http/raw-body.ts";
import { twilioReportedStatus } from "../../providers/twilio/reports.ts";
import { TWILIO_SIGNATURE_HEADER, twilioSignedUrls, verifyTwilioSignature } from "../../providers/twilio/signature.ts";
import { receiveMessage } from "../messages/service.ts";
import { twilioInboundSchema, twilioStatusSchema } from "./model.ts";
import {
  applyReport,
  configuredProvider,
  counted,
  decodeUtf8,
  nowSecs,
  type ProviderWebhookDeps,
  refused,
  type TwilioConfig,
  validated,
  verifyingCredentials,
} from "./webhook.ts";

/** A form-encoded body as its name/value pairs, in the order sent (Twilio signs every one of them). */
function formPairs(body: RawBody): [string, string][] {
  return [...new URLSearchParams(decodeUtf8(body.bytes))];
}

/**
 * Twilio signs with the account's auth token (its webhook-security page), also when messages are sent with an API
 * key: so `auth_token` is what verifies, every value of it still in its rotation overlap.
 */
function assertTwilioSigned(deps: ProviderWebhookDeps, provider: TwilioConfig, request: Request, form: [string, string][]): void {
  const tokens = verifyingCredentials(deps, provider.name, "auth_token");
  const message = "missing or invalid X-Twilio-Signature";
  if (tokens.length === 0) throw refused(message, `provider ${provider.name}: no auth_token is stored, so no Twilio signature can verify`);
  const header = request.headers.get(TWILIO_SIGNATURE_HEADER);
  if (header === null) throw refused(message, `provider ${provider.name}: Twilio webhook without X-Twilio-Signature`);
  const urls = twilioSignedUrls(deps.publicUrl, request.url);
  if (!urls.some((url) => verifyTwilioSignature(header, tokens, url, form))) {
    throw refused(message, `provider ${provider.name}: X-Twilio-Signature does not match ${urls[0]} (is MESSAGING_PUBLIC_URL the URL given to Twilio?)`);
  }
}

/**
 * A message status callback: a delivery report for the message Twilio named by its sid. A repeat or a report the
 * message has moved past changes nothing (`duplicate`); a sid not stored (yet, or a message sent by another system
 * on the same account) is `unmatched` and tried again for a while. All are answered 2xx: Twilio has nothing to retry.
 */
export function twilioStatus(deps: ProviderWebhookDeps, name: string, request: Request, body: RawBody): Promise<void> {
  const provider = configuredProvider(deps, "twilio", name);
  return counted(deps, name, "twilio_status", async () => {
    const form = formPairs(body);
    assertTwilioSigned(deps, provider, request, form);
    const report = validated(twilioStatusSchema, Object.fromEntries(form));
    const status = twilioReportedStatus(report.MessageStatus);
    if (status === undefined) return ["accepted", undefined];
    const code = report.ErrorCode?.trim();
    const result = await applyReport(deps, name, { providerMessageId: report.MessageSid, status, errorCode: code ? `twilio ${code}` : null });
    if (!result.found) return ["unmatched", undefined];
    return [result.changed ? "accepted" : "duplicate", undefined];
  });
}

/** `MediaUrl0` … `MediaUrl{NumMedia-1}`; a count that is not a small number is refused with the rest of the form. */
function mediaUrls(fields: Record<string, string>): unknown[] {
  const raw = fields.NumMedia?.trim() ?? "0";
  if (!/^\d{1,3}$/.test(raw)) throw validationFailed([{ path: "NumMedia", message: "must be a whole number" }]);
  return Array.from({ length: Number(raw) }, (_, i) => fields[`MediaUrl${i}`]);
}

/**
 * An incoming message: stored as an inbound SMS, or MMS when media came with it, through the receive path that
 * every inbound message takes; a MessageSid seen before stores nothing (`duplicate`), and Twilio is answered the
 * same either way, so its retry of a message we already have ends there.
 */
export function twilioInbound(deps: ProviderWebhookDeps, name: string, request: Request, body: RawBody): Promise<void> {
  const provider = configuredProvider(deps, "twilio", name);
  return counted(deps, name, "twilio_inbound", async () => {
    const form = formPairs(body);
    assertTwilioSigned(deps, provider, request, form);
    const fields = Object.fromEntries(form);
    const m = validated(twilioInboundSchema(deps.limits), { ...fields, attachments: mediaUrls(fields) });
    const result = await receiveMessage(deps.messages, {
      channel: m.attachments.length > 0 ? "mms" : "sms",
      from: m.From,
      to: m.To,
      body: m.Body,
      attachments: m.attachments,
      timestamp: formatTimestamp(new Date(nowSecs(deps) * 1000)),
      providerMessageId: m.MessageSid,
    });
    return [result.body.duplicate ? "duplicate" : "accepted", undefined];
  });
}
