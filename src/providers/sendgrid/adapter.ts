/**
 * The SendGrid adapter: email through SendGrid's v3 Mail Send API (`POST {baseUrl}/v3/mail/send`, JSON,
 * `Authorization: Bearer <api key>`), mapped onto the four provider outcomes. SendGrid answers 202 with the
 * message's id in the `X-Message-Id` header; its event webhook later names the message by that id
 * (events.ts). Every request goes through the egress guard.
 *
 * Idempotency: Mail Send takes no idempotency key, so `SendOptions.idempotencyKey` cannot be passed on. A call
 * whose answer is lost (a timeout or a reset after SendGrid accepted) is retried and may send the email twice:
 * delivery through SendGrid is at-least-once in that window, as the README describes for providers without keys.
 *
 * Sender: the message's own `from` goes on the wire as `from.email`, with its display name as `from.name`
 * (`Example <noreply@example.com>`); SendGrid sends only from verified identities, which the provider's `senders`
 * list, checked before the message is stored (src/providers/senders.ts). Nothing is rewritten.
 *
 * Acceptance: any 2xx is final. SendGrid's 202 names the message in `X-Message-Id`; without a usable one (a proxy or
 * an edge that strips headers) the email was still accepted, and sending it again would deliver it twice, so it is
 * `accepted` with no id (its events cannot be matched; the dispatcher counts it).
 *
 * Attachments are fetched through the egress guard (attachments.ts) and sent as `attachments[]`, base64; an HTML
 * body is sent with a plain-text alternative (text/plain first, as SendGrid requires).
 */
import { type Egress, EgressRefusedError, type EgressResponse, TRANSIENT_REFUSALS } from "../../security/egress.ts";
import {
  accepted,
  type OutboundMessage,
  permanentError,
  type Provider,
  type ProviderOutcome,
  rateLimited,
  type SendOptions,
  transientError,
  untilAborted,
} from "../provider.ts";
import type { Attachment, AttachmentFetcher } from "../attachments.ts";
import { emailParts, emailRecipient, emailSender, emailSubject } from "../email-content.ts";
import { SENDGRID_DEFAULT_BASE_URL } from "./config.ts";

export interface SendGridSettings {
  /** Read at every call, so a rotated key is used from the next send on. */
  apiKey: () => string;
  /** The display name the provider's `senders` give an address, for a message whose `from` has none. */
  senderName?: (address: string) => string | undefined;
  /** Fetches attachments (through the egress guard, under the size cap); without one, attachments are refused. */
  attachments?: AttachmentFetcher;
  /** `https://api.sendgrid.com` when not given; the EU region, a proxy or a test fake otherwise. */
  baseUrl?: string;
  egress: Egress;
  /** Unix milliseconds, for reading `X-RateLimit-Reset`; `Date.now` when not given. */
  now?: () => number;
}

export { SENDGRID_DEFAULT_BASE_URL };
/** The longest wait a 429 can ask for: a reset further away is more likely a clock problem than a real window. */
export const MAX_RATE_LIMIT_WAIT_MS = 15 * 60_000;

/** Of SendGrid's error list, how much is kept in the attempt log. */
const MAX_ERRORS = 10;
const MAX_REASON_LENGTH = 1000;
/** A message id we can match events by: visible ASCII, no `.` (events append `.suffix` to it), bounded. */
const MESSAGE_ID = /^[\x21-\x2d\x2f-\x7e]{1,128}$/;
/** SendGrid keys are visible ASCII (`SG.` and base64url); anything else cannot go in a header as it is. */
const API_KEY = /^[\x21-\x7e]+$/;

export class SendGridProvider implements Provider {
  readonly #settings: SendGridSettings;
  readonly #url: string;

  constructor(
    readonly name: string,
    settings: SendGridSettings,
  ) {
    this.#settings = settings;
    this.#url = `${(settings.baseUrl ?? SENDGRID_DEFAULT_BASE_URL).replace(/\/+$/, "")}/v3/mail/send`;
  }

  async send(message: OutboundMessage, { signal }: SendOptions): Promise<ProviderOutcome> {
    signal.throwIfAborted();
    let apiKey: string;
    try {
      // Trimmed: a key saved from `echo … > file` ends in a newline.
      apiKey = this.#settings.apiKey().trim();
    } catch (err) {
      return transientError(`the SendGrid API key could not be read: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (apiKey === "") return permanentError("no SendGrid API key is configured");
    // Checked here because a header that refuses the value quotes it in its error, which would log the key.
    if (!API_KEY.test(apiKey)) return permanentError("the SendGrid API key has characters an HTTP header cannot carry");
    let files: Attachment[] = [];
    if (message.attachments.length > 0) {
      if (this.#settings.attachments === undefined) return permanentError("this SendGrid provider has no way to fetch attachments");
      const fetched = await untilAborted(this.#settings.attachments.load(message.attachments), signal);
      if (!Array.isArray(fetched)) return fetched;
      files = fetched;
    }
    let response: EgressResponse;
    try {
      response = await untilAborted(
        this.#settings.egress.request(this.#url, {
          method: "POST",
          headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json", accept: "application/json" },
          body: JSON.stringify(this.#mailSendBody(message, files)),
        }),
        signal,
      );
    } catch (err) {
      signal.throwIfAborted();
      return refusalOutcome(err);
    }
    return this.#outcome(response);
  }

  /**
   * The v3 Mail Send body: one personalization with one recipient; the message's sender (name and address); the
   * text part, and the HTML part after it when the body is HTML; the attachments, base64.
   */
  #mailSendBody(message: OutboundMessage, files: readonly Attachment[]) {
    const sender = emailSender(message.from, this.#settings.senderName);
    const parts = emailParts(message.body);
    return {
      personalizations: [{ to: [{ email: emailRecipient(message.to) }] }],
      from: sender.name === undefined ? { email: sender.address } : { email: sender.address, name: sender.name },
      subject: emailSubject(message),
      // SendGrid refuses an empty part: an HTML body that renders to no text is sent as HTML alone.
      content: [
        ...(parts.html === undefined || parts.text.trim() !== "" ? [{ type: "text/plain", value: parts.text }] : []),
        ...(parts.html === undefined ? [] : [{ type: "text/html", value: parts.html }]),
      ],
      ...(files.length === 0
        ? {}
        : {
            attachments: files.map((f) => ({
              content: Buffer.from(f.content).toString("base64"),
              type: f.contentType,
              filename: f.filename,
              disposition: "attachment",
            })),
          }),
    };
  }

  #outcome(response: EgressResponse): ProviderOutcome {
    const { status, headers } = response;
    if (status >= 200 && status < 300) {
      const id = headers.get("x-message-id")?.trim() ?? "";
      return accepted(MESSAGE_ID.test(id) ? id : null);
    }
    if (status === 429) return rateLimited(resetWaitMs(headers.get("x-ratelimit-reset"), (this.#settings.now ?? Date.now)()));
    const reason = `SendGrid ${status}: ${errorList(response.body) ?? "no error list in the answer"}`;
    if (status >= 500 || status === 408) return transientError(reason, status);
    // 400 (a field SendGrid refuses), 401 (a wrong key), 403 (an unverified sender or a key without the
    // permission), 413 (too large) as SendGrid documents them, and any other 4xx (404 from a wrong base URL):
    // the same request cannot succeed later.
    if (status >= 400 && status < 500) return permanentError(reason, status);
    // 1xx or a 3xx the guard did not follow: not an answer Mail Send gives; try again rather than give up.
    return transientError(`SendGrid answered an unexpected ${status}`, status);
  }
}

/** `X-RateLimit-Reset` (unix seconds) as the wait from now, bounded; undefined when missing or not a number. */
export function resetWaitMs(header: string | null, nowMs: number): number | undefined {
  if (header === null || !/^\s*\d{1,12}\s*$/.test(header)) return undefined;
  return Math.min(Math.max(0, Number(header) * 1000 - nowMs), MAX_RATE_LIMIT_WAIT_MS);
}

/** SendGrid's `{errors: [{message, field}]}` as one line (`field: message; …`), or null when the body is not that. */
export function errorList(body: Uint8Array): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return null;
  }
  const errors = typeof parsed === "object" && parsed !== null ? (parsed as { errors?: unknown }).errors : undefined;
  if (!Array.isArray(errors)) return null;
  const lines = errors.slice(0, MAX_ERRORS).flatMap((e: unknown) => {
    if (typeof e !== "object" || e === null) return [];
    const { message, field } = e as { message?: unknown; field?: unknown };
    if (typeof message !== "string" || message.trim() === "") return [];
    return [typeof field === "string" && field !== "" ? `${field}: ${message.trim()}` : message.trim()];
  });
  return lines.length === 0 ? null : lines.join("; ").slice(0, MAX_REASON_LENGTH);
}

/** A failed guarded request as an outcome: the network may recover, a refused configuration will not. */
function refusalOutcome(err: unknown): ProviderOutcome {
  if (!(err instanceof EgressRefusedError)) {
    return transientError(`the request to SendGrid failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  const reason = `the request to SendGrid failed (${err.reason}): ${err.message}`;
  return TRANSIENT_REFUSALS.has(err.reason) ? transientError(reason) : permanentError(reason);
}
