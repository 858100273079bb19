/**
 * The one interface every provider implements (the mock now; Twilio, SendGrid and SMTP later), and the typed
 * outcomes of a send. The dispatcher never sees HTTP statuses or SDK errors: an adapter maps what its provider
 * answered onto these four, and the dispatcher decides from them alone whether to finish, retry or fail over.
 */
import type { Channel } from "../domain/channel.ts";

/** An outbound message as a provider needs it. */
export interface OutboundMessage {
  /** Our message id (decimal string). */
  id: string;
  channel: Channel;
  from: string;
  to: string;
  body: string;
  attachments: string[];
  /** Email only. */
  subject?: string;
}

export interface SendOptions {
  /** The same for every call about one message (see `deliveryIdempotencyKey`), so a retry cannot send twice. */
  idempotencyKey: string;
  /** Aborted when the call's timeout runs out or the process stops; adapters pass it to their request. */
  signal: AbortSignal;
}

/** What became of one provider call. */
export type ProviderOutcome =
  | { kind: "accepted"; providerMessageId: string }
  | { kind: "rate_limited"; retryAfterMs?: number }
  | { kind: "transient_error"; reason: string; status?: number }
  | { kind: "permanent_error"; reason: string; status?: number };

export interface Provider {
  /** The provider's name in the registry and in the attempt log (`sms-mms`, `email`, `twilio-main`, …). */
  readonly name: string;
  /** Resolves with an outcome for every answer, including garbage; rejects only when aborted (a timeout). */
  send(message: OutboundMessage, options: SendOptions): Promise<ProviderOutcome>;
}

export const accepted = (providerMessageId: string): ProviderOutcome => ({ kind: "accepted", providerMessageId });

/** A `Retry-After` that is missing, negative or not a number is dropped rather than trusted. */
export const rateLimited = (retryAfterMs?: number): ProviderOutcome =>
  retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs >= 0 ? { kind: "rate_limited", retryAfterMs } : { kind: "rate_limited" };

export const transientError = (reason: string, status?: number): ProviderOutcome =>
  status === undefined ? { kind: "transient_error", reason } : { kind: "transient_error", reason, status };

export const permanentError = (reason: string, status?: number): ProviderOutcome =>
  status === undefined ? { kind: "permanent_error", reason } : { kind: "permanent_error", reason, status };

/**
 * The idempotency key of every provider call about one message: derived from the message id alone, so a call
 * retried after a timeout, a crash or a lost lease carries the same key, and a provider that honours keys
 * answers the repeat with its first acceptance instead of sending again.
 */
export const deliveryIdempotencyKey = (messageId: string): string => `messaging-msg-${messageId}`;

/**
 * Calls `provider.send` under a timeout enforced with an AbortSignal: a call that has not answered in
 * `timeoutMs` is a transient error (the message will be retried with the same key). An adapter that throws
 * instead of answering is a transient error too; nothing a provider does can escape as an exception.
 */
export async function sendWithTimeout(
  provider: Provider,
  message: OutboundMessage,
  timeoutMs: number,
  stop?: AbortSignal,
): Promise<ProviderOutcome> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = stop ? AbortSignal.any([timeout, stop]) : timeout;
  let onAbort = () => {};
  const timedOut = new Promise<ProviderOutcome>((resolve) => {
    onAbort = () => resolve(transientError(timeout.aborted ? `no answer within ${timeoutMs} ms` : "stopped before the provider answered"));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  const answered = Promise.resolve()
    .then(() => provider.send(message, { idempotencyKey: deliveryIdempotencyKey(message.id), signal }))
    .then(
      (outcome) => (isOutcome(outcome) ? outcome : transientError("the provider adapter answered something that is not an outcome")),
      (err: unknown) => transientError(`the provider adapter failed: ${err instanceof Error ? err.message : String(err)}`),
    );
  try {
    return await Promise.race([answered, timedOut]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Guards the dispatcher against an adapter bug: only the four outcomes, with fields of the right types, pass. */
function isOutcome(value: unknown): value is ProviderOutcome {
  if (typeof value !== "object" || value === null) return false;
  const o = value as Record<string, unknown>;
  const optionalNumber = (v: unknown) => v === undefined || (typeof v === "number" && Number.isFinite(v));
  switch (o.kind) {
    case "accepted":
      return typeof o.providerMessageId === "string" && o.providerMessageId.length > 0;
    case "rate_limited":
      return optionalNumber(o.retryAfterMs);
    case "transient_error":
    case "permanent_error":
      return typeof o.reason === "string" && optionalNumber(o.status);
    default:
      return false;
  }
}
