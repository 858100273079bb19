/**
 * What the Twilio and SendGrid webhooks do once their body is read: check the provider's own proof that it sent the
 * request (Twilio's signature, SendGrid's signed events, the Inbound Parse URL's basic credentials), then turn what
 * it says into a delivery report (delivery/reports.ts) or an inbound message (messages' receive path). Nothing is
 * stored for a request that fails its check. Every request of a configured provider is counted by outcome.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { z } from "zod";
import type { ProviderConfig } from "../../config/index.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { runPeriodically } from "../../db/periodic.ts";
import { type DeliveryReport, type ReportedStatus, type ReportResult, reportDelivery, reportWhenStored } from "../../delivery/reports.ts";
import { emailAddressProblem } from "../../domain/address.ts";
import { formatTimestamp } from "../../domain/timestamp.ts";
import { AppError, type ErrorDetail, validationFailed } from "../../http/errors.ts";
import { jsonTextProblem } from "../../http/json-text.ts";
import type { RawBody } from "../../http/raw-body.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { parseSendGridEvents } from "../../providers/sendgrid-events.ts";
import type { CredentialLookup } from "../../security/credential-lookup.ts";
import { SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER, verifySendGridEvent } from "../../security/sendgrid-signature.ts";
import { TWILIO_SIGNATURE_HEADER, verifyTwilioSignature } from "../../security/twilio-signature.ts";
import type { MessageLimits } from "../messages/model.ts";
import { type MessagesDeps, receiveMessage } from "../messages/service.ts";
import { firstMailbox, MESSAGE_ID_MAX, messageIdOf } from "./inbound-email.ts";
import {
  sendgridInboundSchema,
  twilioInboundSchema,
  twilioStatusSchema,
  type WebhookKind,
  type WebhookOutcome,
} from "./model.ts";
import { deleteEventIdsOlderThan, recordEventIds, seenEventIds } from "./repository.ts";

export interface ProviderWebhookDeps {
  providers: readonly ProviderConfig[];
  credentials: CredentialLookup;
  /** MESSAGING_PUBLIC_URL: the base of the URL Twilio signs. Without it, the URL the request arrived at. */
  publicUrl?: string | undefined;
  sql: SqlRunner;
  messages: MessagesDeps;
  metrics: Metrics;
  logger: Logger;
  limits: MessageLimits;
  /**
   * How long a delivery report naming no stored message is tried again (in this process): the dispatcher may
   * not have written the provider's id yet when a quick report arrives.
   */
  unmatchedRetryMs: number;
  /** Unix seconds; tests move it. */
  nowSecs?: () => number;
}

type TwilioConfig = Extract<ProviderConfig, { kind: "twilio" }>;
type SendGridConfig = Extract<ProviderConfig, { kind: "sendgrid" }>;
type KindConfig = { twilio: TwilioConfig; sendgrid: SendGridConfig };

const wallClockSecs = () => Math.floor(Date.now() / 1000);

/**
 * How old a signed SendGrid batch may be (and how far ahead of our clock). SendGrid documents no window and retries
 * a failed post for up to a day; two days keep its retries and refuse older replays, and event ids are remembered
 * longer than that (EVENT_ID_RETENTION_HOURS), so a batch that still verifies is always recognised when seen twice.
 */
export const SENDGRID_EVENT_TOLERANCE_SECS = 2 * 24 * 3600;
export const EVENT_ID_RETENTION_HOURS = 72;

/**
 * The configured provider of that kind named by the URL, or 404: a webhook URL for a provider that does not exist
 * (or exists with another kind) is not a route at all.
 */
export function configuredProvider<K extends keyof KindConfig>(deps: Pick<ProviderWebhookDeps, "providers">, kind: K, name: string): KindConfig[K] {
  const provider = deps.providers.find((p) => p.name === name && p.kind === kind);
  if (!provider) throw new AppError("not_found", `no ${kind} provider of that name is configured`);
  return provider as KindConfig[K];
}

/** Runs one webhook and counts its outcome; a 401 counts as `unauthorized`, a 400 as `invalid`, and is rethrown. */
async function counted<T>(deps: ProviderWebhookDeps, provider: string, kind: WebhookKind, run: () => Promise<[WebhookOutcome, T]>): Promise<T> {
  const count = (outcome: WebhookOutcome) => deps.metrics.providerWebhooks.inc({ provider, kind, outcome });
  try {
    const [outcome, value] = await run();
    count(outcome);
    return value;
  } catch (err) {
    if (err instanceof AppError && err.status === 401) count("unauthorized");
    else if (err instanceof AppError && err.status === 400) count("invalid");
    throw err;
  }
}

/** A 401 whose reason is logged (with the provider) but not answered. */
const refused = (message: string, logDetail: string, headers?: Record<string, string>) =>
  new AppError("unauthorized", message, { logDetail, ...(headers ? { headers } : {}) });

/** The parsed value, or a 400 naming each offending field (never echoing its value). */
function validated<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details: ErrorDetail[] = result.error.issues.slice(0, 20).map((issue) => ({
    path: issue.path.length > 0 ? issue.path.join(".") : "root",
    message: issue.message,
  }));
  throw validationFailed(details);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new AppError("bad_request", "request body is not valid UTF-8");
  }
}

/** The first wait before a report that named no message is tried again. */
const UNMATCHED_FIRST_RETRY_MS = 500;

/**
 * Applies a delivery report; one naming no stored message is tried again for a while in the background
 * (reportWhenStored), since the dispatcher may not have written the provider's id yet, and is answered as unmatched.
 */
async function applyReport(deps: ProviderWebhookDeps, source: string, report: DeliveryReport): Promise<ReportResult> {
  const result = await reportDelivery(deps, report);
  if (!result.found) {
    const retry = { giveUpAt: Date.now() + deps.unmatchedRetryMs, firstWaitMs: UNMATCHED_FIRST_RETRY_MS, source };
    setTimeout(() => reportWhenStored(deps, report, retry), UNMATCHED_FIRST_RETRY_MS).unref();
  }
  return result;
}

/** A form-encoded body as its name/value pairs, in the order sent (Twilio signs every one of them). */
function formPairs(body: RawBody): [string, string][] {
  return [...new URLSearchParams(decodeUtf8(body.bytes))];
}

// ---------------------------------------------------------------------------------------------------------------
// Twilio

/** The request target as sent (path and query), without scheme and authority. */
const targetOf = (url: string) => url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "") || "/";

/**
 * The URL Twilio signed: MESSAGING_PUBLIC_URL followed by the path and query this request named, since behind a
 * proxy the request's own URL (scheme, host, port) is not the one Twilio was given; the request URL itself when no
 * public URL is set. Twilio documents that it is inconsistent about a default port (`:443`) in the signed URL, and
 * its own libraries accept either spelling, so both are tried.
 */
export function twilioSignedUrls(publicUrl: string | undefined, requestUrl: string): string[] {
  const url = publicUrl ? publicUrl.replace(/\/+$/, "") + targetOf(requestUrl) : requestUrl;
  const parts = /^(https?):\/\/([^/?#:]+)(?::(\d+))?(.*)$/i.exec(url);
  if (!parts) return [url];
  const [, scheme, host, port, rest] = parts;
  const standard = scheme!.toLowerCase() === "https" ? "443" : "80";
  if (port === undefined) return [url, `${scheme}://${host}:${standard}${rest}`];
  if (port === standard) return [url, `${scheme}://${host}${rest}`];
  return [url];
}

/**
 * Twilio signs with the account's auth token (its webhook-security page), also when messages are sent with an API
 * key: so `auth_token` is what verifies, every value of it still in its rotation overlap.
 */
function assertTwilioSigned(deps: ProviderWebhookDeps, provider: TwilioConfig, request: Request, form: [string, string][]): void {
  const tokens = deps.credentials.verifying(provider.name, "auth_token");
  const message = "missing or invalid X-Twilio-Signature";
  if (tokens.length === 0) throw refused(message, `provider ${provider.name}: no auth_token is stored, so no Twilio signature can verify`);
  const header = request.headers.get(TWILIO_SIGNATURE_HEADER);
  if (header === null) throw refused(message, `provider ${provider.name}: Twilio webhook without X-Twilio-Signature`);
  const urls = twilioSignedUrls(deps.publicUrl, request.url);
  if (!urls.some((url) => verifyTwilioSignature(header, tokens, url, form))) {
    throw refused(message, `provider ${provider.name}: X-Twilio-Signature does not match ${urls[0]} (is MESSAGING_PUBLIC_URL the URL given to Twilio?)`);
  }
}

/** Twilio's message statuses that report a delivery; the others (queued, sending, accepted, …) change nothing. */
const TWILIO_REPORTED: Readonly<Record<string, ReportedStatus>> = {
  sent: "sent",
  delivered: "delivered",
  undelivered: "undelivered",
  failed: "failed",
};

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
    const status = TWILIO_REPORTED[report.MessageStatus];
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
      timestamp: formatTimestamp(new Date((deps.nowSecs ?? wallClockSecs)() * 1000)),
      providerMessageId: m.MessageSid,
    });
    return [result.body.duplicate ? "duplicate" : "accepted", undefined];
  });
}

// ---------------------------------------------------------------------------------------------------------------
// SendGrid

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
    const now = (deps.nowSecs ?? wallClockSecs)();
    if (!verifySendGridEvent(key, signature, timestamp, body.bytes, now, SENDGRID_EVENT_TOLERANCE_SECS)) {
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

/** The basic credentials of a request, or undefined when it has none that parse. */
function basicCredentials(header: string | null): { user: string; password: string } | undefined {
  const match = header && header.length <= 1024 ? /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(header) : null;
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

const sameText = (a: string, b: string) => {
  const x = createHash("sha256").update(a).digest();
  const y = createHash("sha256").update(b).digest();
  return timingSafeEqual(x, y);
};

/**
 * SendGrid does not sign Inbound Parse posts, so the Parse URL carries basic credentials: the provider's name as
 * user, and any `parse_password` still in its rotation overlap. Checked before the body is read.
 */
export function authorizeInboundParse(deps: ProviderWebhookDeps, name: string, request: Request): void {
  configuredProvider(deps, "sendgrid", name);
  const challenge = { "www-authenticate": `Basic realm="messaging ${name}"` };
  const message = "Inbound Parse needs the basic credentials of its configured URL";
  const fail = (detail: string) => {
    deps.metrics.providerWebhooks.inc({ provider: name, kind: "sendgrid_inbound", outcome: "unauthorized" });
    return refused(message, `provider ${name}: ${detail}`, challenge);
  };
  const passwords = deps.credentials.verifying(name, "parse_password");
  if (passwords.length === 0) throw fail("no parse_password is stored, so no Inbound Parse post can be accepted");
  const given = basicCredentials(request.headers.get("authorization"));
  if (!given) throw fail("Inbound Parse post without basic credentials");
  let matched = false;
  for (const password of passwords) if (password !== "" && sameText(password, given.password)) matched = true;
  if (!matched || given.user !== name) throw fail("Inbound Parse post with wrong basic credentials");
}

/** The string fields of a multipart body (files, i.e. attachments, are left out), or a 400 when it does not parse. */
async function multipartFields(body: RawBody): Promise<Record<string, string>> {
  let form: Awaited<ReturnType<Response["formData"]>>;
  try {
    form = await new Response(body.bytes, { headers: { "content-type": body.contentType } }).formData();
  } catch {
    throw new AppError("bad_request", "request body is not valid multipart/form-data");
  }
  const fields: Record<string, string> = {};
  form.forEach((value, field) => {
    if (typeof value === "string" && !(field in fields)) fields[field] = value;
  });
  return fields;
}

/** An address taken from a header field, or a 400 naming the field when it is none or not a usable one. */
function mailbox(field: string, address: string | undefined): string {
  const problem = address === undefined ? "names no email address" : emailAddressProblem(address);
  if (problem) throw validationFailed([{ path: field, message: problem }]);
  return address!;
}

/** The envelope's first recipient, for mail whose `To` names none of ours (Bcc, a list). */
function envelopeRecipient(envelope: string | undefined): string | undefined {
  if (envelope === undefined) return undefined;
  try {
    const to = (JSON.parse(envelope) as { to?: unknown }).to;
    return Array.isArray(to) && typeof to[0] === "string" ? to[0] : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The id an inbound email is deduplicated by: its Message-ID header. A message without one (rare; most mail
 * servers add it) is named by a hash of its header block instead, which SendGrid repeats verbatim on a retry.
 */
function inboundEmailId(fields: { headers: string }, raw: Uint8Array): string {
  const id = messageIdOf(fields.headers);
  if (id !== undefined && id.length <= MESSAGE_ID_MAX) return id;
  const basis = id ?? (fields.headers === "" ? raw : fields.headers);
  return `sha256:${createHash("sha256").update(basis).digest("hex")}`;
}

/**
 * An Inbound Parse post (authorized by authorizeInboundParse): an inbound email from the first mailbox of `from`
 * to the first of `to` (or of the envelope), its text part as the body (the HTML part when there is no text),
 * its subject kept; a Message-ID seen before stores nothing.
 */
export function sendgridInbound(deps: ProviderWebhookDeps, name: string, body: RawBody): Promise<void> {
  configuredProvider(deps, "sendgrid", name);
  return counted(deps, name, "sendgrid_inbound", async () => {
    const fields = validated(sendgridInboundSchema, await multipartFields(body));
    const from = mailbox("from", firstMailbox(fields.from));
    const to = mailbox("to", firstMailbox(fields.to) ?? envelopeRecipient(fields.envelope));
    const result = await receiveMessage(deps.messages, {
      channel: "email",
      from,
      to,
      body: fields.text !== "" ? fields.text : fields.html,
      subject: fields.subject,
      attachments: [],
      timestamp: formatTimestamp(new Date((deps.nowSecs ?? wallClockSecs)() * 1000)),
      providerMessageId: inboundEmailId(fields, body.bytes),
    });
    return [result.body.duplicate ? "duplicate" : "accepted", undefined];
  });
}

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
