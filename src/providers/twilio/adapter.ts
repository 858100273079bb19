/**
 * Twilio Programmable Messaging as a Provider: one `POST {baseUrl}/2010-04-01/Accounts/{AccountSid}/Messages.json`
 * per message, form-encoded, with HTTP basic auth, through the egress guard. What Twilio answers is mapped onto the
 * four outcomes here and nowhere else:
 *
 * - 2xx with a string `sid` → accepted with that sid (Twilio answers a create with 201 and the Message resource).
 * - 429, or any answer whose error `code` is 20429 → rate limited, honouring `Retry-After` (seconds or a date).
 *   Twilio documents that a request answered 429 was not processed, so a retry cannot send twice.
 * - 5xx → transient, with Twilio's code and message when the body has them.
 * - any other 4xx → permanent, reason `twilio <code>: <message>` (21211 invalid `To`, 21610 unsubscribed recipient,
 *   20003 bad credentials, …) and the status, so the attempt log keeps what Twilio said. 21610 is also flagged
 *   `recipientOptedOut`: the recipient texted STOP to this sender at Twilio, which the service then records too.
 * - a 2xx without a usable `sid` (not JSON, no sid, an empty one) → accepted all the same, with no id: Twilio took
 *   the message, and retrying would send it again. Its status callbacks cannot be matched (the attempt says so and
 *   `messaging_delivery_unmatchable_acceptances_total` counts it). A 4xx body that is not Twilio's error JSON is
 *   still permanent (the status alone says the request was refused); a 5xx one still transient.
 * - the egress guard's `timeout`, `connection_failed` (refused, reset, body cut off), `resolve_failed` (DNS is down
 *   more often than misconfigured) and `response_too_large` → transient; its other refusals (host not allowed,
 *   private address, scheme, port, bad URL, too many redirects) → permanent: they are configuration errors that no
 *   retry will cure, and failing the message says so at once instead of retrying for hours.
 *
 * Idempotency: Twilio documents no idempotency key for creating a Message (`I-Twilio-Idempotency-Token` is a header
 * Twilio puts on the webhooks it sends, not one its API reads), so none is sent. A call that timed out after Twilio
 * accepted it can therefore be sent again by the retry; the status callback of the first will name an unknown sid.
 *
 * What goes on the wire is what the message holds: `To` and `From` are the message's own addresses in E.164 (the
 * separators a caller typed removed; a short code stays its digits), never a configured number, so replies thread
 * into the conversation the API stored and an opt-out recorded for that sender is the one that applies. With a
 * messaging service, `MessagingServiceSid` and the message's `From` are both sent (Twilio then sends from that
 * number, which must be in the service's pool). Which senders a provider may use is decided before anything is
 * stored (`senders`, src/providers/senders.ts), not here.
 *
 * Abort: the egress guard takes no AbortSignal, so `send` races the request against the signal and rejects with its
 * reason as soon as it aborts, as the Provider contract asks. The abandoned request is still ended by the guard's own
 * deadline (`timeoutMs` of the Egress), which bounds how long an abandoned connection can stay open.
 */
import { normalizePhone } from "../../domain/address.ts";
import { type Egress, EgressRefusedError, type EgressResponse, TRANSIENT_REFUSALS } from "../../security/egress.ts";
import { TWILIO_API_BASE_URL } from "./config.ts";
import {
  accepted,
  type OutboundMessage,
  permanentError,
  type Provider,
  type ProviderOutcome,
  rateLimited,
  recipientOptedOut,
  type SendOptions,
  transientError,
  untilAborted,
} from "../provider.ts";

export interface TwilioCredentials {
  /** The account SID with its auth token, or an API key SID with its secret. */
  username: string;
  password: string;
}

export interface TwilioProviderOptions {
  accountSid: string;
  /** Read at every call, so a rotated auth token or API key applies to the next message without a restart. */
  credentials: () => TwilioCredentials;
  /** Sent as `MessagingServiceSid` beside the message's `From` (the number must be in the service's pool). */
  messagingServiceSid?: string;
  /** Sent as `StatusCallback` with every message, so Twilio reports delivery there. */
  statusCallbackUrl?: string;
  /** `https://api.twilio.com` when not given; a regional edge, a proxy or a test's fake otherwise. */
  baseUrl?: string;
  egress: Egress;
}

export { TWILIO_API_BASE_URL };

/** Twilio's error code for "too many requests", which it may send with a status other than 429. */
const TOO_MANY_REQUESTS = 20429;
/** Twilio's error code for "Attempt to send to unsubscribed recipient": the recipient opted out of this sender. */
const UNSUBSCRIBED_RECIPIENT = 21610;

/** Twilio's error body, `{ code, message, more_info, status }`, as far as it was present and well typed. */
interface TwilioError {
  code?: number;
  message?: string;
}

export class TwilioProvider implements Provider {
  readonly #options: TwilioProviderOptions;
  readonly #url: string;

  constructor(
    readonly name: string,
    options: TwilioProviderOptions,
  ) {
    this.#options = options;
    const base = (options.baseUrl ?? TWILIO_API_BASE_URL).replace(/\/+$/, "");
    this.#url = `${base}/2010-04-01/Accounts/${encodeURIComponent(options.accountSid)}/Messages.json`;
  }

  send(message: OutboundMessage, { signal }: SendOptions): Promise<ProviderOutcome> {
    if (signal.aborted) return Promise.reject(signal.reason);
    return untilAborted(this.#call(message), signal);
  }

  async #call(message: OutboundMessage): Promise<ProviderOutcome> {
    let response: EgressResponse;
    try {
      const { username, password } = this.#options.credentials();
      response = await this.#options.egress.request(this.#url, {
        method: "POST",
        headers: {
          authorization: `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`,
          "content-type": "application/x-www-form-urlencoded",
          accept: "application/json",
        },
        body: this.#form(message).toString(),
      });
    } catch (error) {
      return failedExchange(error);
    }
    return twilioOutcome(response);
  }

  /** The form Twilio's Messages resource takes for this message. */
  #form(message: OutboundMessage): URLSearchParams {
    const { messagingServiceSid, statusCallbackUrl } = this.#options;
    const form = new URLSearchParams({ To: normalizePhone(message.to), From: normalizePhone(message.from) });
    if (messagingServiceSid) form.set("MessagingServiceSid", messagingServiceSid);
    // Twilio takes a body, media or both; an empty Body next to media would be sent as an empty text part.
    if (message.body !== "" || message.attachments.length === 0) form.set("Body", message.body);
    for (const url of message.attachments) form.append("MediaUrl", url);
    if (statusCallbackUrl) form.set("StatusCallback", statusCallbackUrl);
    return form;
  }
}

/** The outcome of an answer Twilio gave, whatever its body holds. */
function twilioOutcome({ status, headers, body }: Pick<EgressResponse, "status" | "headers" | "body">): ProviderOutcome {
  const json = parseJson(body);
  if (status >= 200 && status < 300) {
    const sid = isRecord(json) ? json.sid : undefined;
    return accepted(typeof sid === "string" && sid !== "" && sid.length <= 256 ? sid : null);
  }
  const error = twilioError(json);
  if (status === 429 || error.code === TOO_MANY_REQUESTS) return rateLimited(retryAfterMs(headers.get("retry-after")));
  const reason = error.code !== undefined || error.message !== undefined
    ? `twilio ${error.code ?? "?"}: ${error.message ?? "(no message)"}`
    : `twilio answered ${status} without an error body`;
  if (status >= 400 && status < 500) return error.code === UNSUBSCRIBED_RECIPIENT ? recipientOptedOut(reason, status) : permanentError(reason, status);
  return transientError(reason, status);
}

/** What a request that got no answer becomes; see the module comment for which refusals are final. */
function failedExchange(error: unknown): ProviderOutcome {
  if (!(error instanceof EgressRefusedError)) {
    return transientError(`twilio request failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  const reason = `twilio request ${error.reason}: ${error.message}`;
  return TRANSIENT_REFUSALS.has(error.reason) ? transientError(reason) : permanentError(`${reason} (configuration error)`);
}

function parseJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    return undefined;
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** The fields of Twilio's error body that have the documented types; others are dropped rather than trusted. */
function twilioError(json: unknown): TwilioError {
  if (!isRecord(json)) return {};
  const error: TwilioError = {};
  if (typeof json.code === "number" && Number.isInteger(json.code)) error.code = json.code;
  if (typeof json.message === "string") error.message = json.message.slice(0, 300);
  return error;
}

/** `Retry-After` as delay-seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date always names its weekday; without letters Date.parse would read "1.5" or "-5" as some date.
  const date = /[A-Za-z]/.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
