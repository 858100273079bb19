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

/**
 * What became of one provider call. A permanent error with `recipientOptedOut` says the provider refused the
 * message because the recipient unsubscribed from its sender (Twilio's 21610): the delivery workers record the
 * opt-out, so later sends to them are refused before anything is queued.
 */
export type ProviderOutcome =
  /**
   * The provider took the message: final, never retried. `providerMessageId` is null when its answer carried no
   * usable id (a proxy stripped SendGrid's `X-Message-Id`, a Twilio body without `sid`): the message is sent, but
   * its delivery reports cannot be matched to it.
   */
  | { kind: "accepted"; providerMessageId: string | null }
  | { kind: "rate_limited"; retryAfterMs?: number }
  | { kind: "transient_error"; reason: string; status?: number }
  | { kind: "permanent_error"; reason: string; status?: number; recipientOptedOut?: boolean };

export interface Provider {
  /** The provider's name in the registry and in the attempt log (`sms-mms`, `email`, `twilio-main`, …). */
  readonly name: string;
  /** Resolves with an outcome for every answer, including garbage; rejects only when aborted (a timeout). */
  send(message: OutboundMessage, options: SendOptions): Promise<ProviderOutcome>;
}

export const accepted = (providerMessageId: string | null): ProviderOutcome => ({ kind: "accepted", providerMessageId });

/** What the attempt log says of an acceptance whose reports cannot be matched (no usable provider id). */
export const UNMATCHABLE_ACCEPTANCE = "accepted without a usable provider message id: its delivery reports cannot be matched";

/** A `Retry-After` that is missing, negative or not a number is dropped rather than trusted. */
export const rateLimited = (retryAfterMs?: number): ProviderOutcome =>
  retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs >= 0 ? { kind: "rate_limited", retryAfterMs } : { kind: "rate_limited" };

export const transientError = (reason: string, status?: number): ProviderOutcome =>
  status === undefined ? { kind: "transient_error", reason } : { kind: "transient_error", reason, status };

export const permanentError = (reason: string, status?: number): ProviderOutcome =>
  status === undefined ? { kind: "permanent_error", reason } : { kind: "permanent_error", reason, status };

/** The provider refused the message because its recipient unsubscribed from the sender. */
export const recipientOptedOut = (reason: string, status?: number): ProviderOutcome =>
  status === undefined ? { kind: "permanent_error", reason, recipientOptedOut: true } : { kind: "permanent_error", reason, status, recipientOptedOut: true };

/**
 * The idempotency key of every provider call about one message: derived from the message id alone, so a call
 * retried after a timeout, a crash or a lost lease carries the same key, and a provider that honours keys
 * answers the repeat with its first acceptance instead of sending again.
 */
export const deliveryIdempotencyKey = (messageId: string): string => `messaging-msg-${messageId}`;

/**
 * Abort signals for provider calls, shared by calls that end at about the same time: calls whose deadlines
 * fall in the same `granularityMs` slot share one controller and one timer. A dispatcher makes thousands of
 * calls a second and a timer, a signal and `AbortSignal.any` per call cost more than the mock provider
 * itself (measured: a quarter of the dispatcher's CPU). Every signal also aborts when `stop` does.
 */
export class CallDeadlines {
  private readonly slots = new Map<number, AbortController>();

  constructor(
    readonly stop: AbortSignal = new AbortController().signal,
    private readonly granularityMs = 10,
  ) {
    stop.addEventListener("abort", () => {
      for (const controller of this.slots.values()) controller.abort(stop.reason);
      this.slots.clear();
    }, { once: true });
  }

  /** A signal that aborts `timeoutMs` from now (up to one slot later), or when `stop` does. */
  signal(timeoutMs: number): AbortSignal {
    if (this.stop.aborted) return this.stop;
    const slot = Math.ceil((Date.now() + timeoutMs) / this.granularityMs);
    let controller = this.slots.get(slot);
    if (!controller) {
      const created = new AbortController();
      controller = created;
      this.slots.set(slot, created);
      setTimeout(() => {
        this.slots.delete(slot);
        created.abort(new DOMException("the provider did not answer in time", "TimeoutError"));
      }, Math.max(0, slot * this.granularityMs - Date.now())).unref();
    }
    return controller.signal;
  }
}

/**
 * Calls `provider.send` under a timeout enforced with an AbortSignal: a call that has not answered in
 * `timeoutMs` is a transient error (the message will be retried with the same key). An adapter that throws
 * instead of answering is a transient error too; nothing a provider does can escape as an exception. `stop`
 * (a signal, or the dispatcher's shared deadlines) aborts the call early.
 */
export async function sendWithTimeout(
  provider: Provider,
  message: OutboundMessage,
  timeoutMs: number,
  stop?: AbortSignal | CallDeadlines,
): Promise<ProviderOutcome> {
  const deadlines = stop instanceof CallDeadlines ? stop : new CallDeadlines(stop, 1);
  const signal = deadlines.signal(timeoutMs);
  let onAbort = () => {};
  const timedOut = new Promise<ProviderOutcome>((resolve) => {
    onAbort = () => resolve(transientError(deadlines.stop.aborted ? "stopped before the provider answered" : `no answer within ${timeoutMs} ms`));
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

/**
 * Settles with `promise`, or rejects with the signal's reason as soon as it aborts: for adapters whose client
 * takes no signal (the egress guard, nodemailer). The abandoned work runs on until its own timeout ends it; the
 * caller is answered at once.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Guards the dispatcher against an adapter bug: only the four outcomes, with fields of the right types, pass. */
function isOutcome(value: unknown): value is ProviderOutcome {
  if (typeof value !== "object" || value === null) return false;
  const o = value as Record<string, unknown>;
  const optionalNumber = (v: unknown) => v === undefined || (typeof v === "number" && Number.isFinite(v));
  switch (o.kind) {
    case "accepted":
      return o.providerMessageId === null || (typeof o.providerMessageId === "string" && o.providerMessageId.length > 0);
    case "rate_limited":
      return optionalNumber(o.retryAfterMs);
    case "transient_error":
      return typeof o.reason === "string" && optionalNumber(o.status);
    case "permanent_error":
      return typeof o.reason === "string" && optionalNumber(o.status) && (o.recipientOptedOut === undefined || typeof o.recipientOptedOut === "boolean");
    default:
      return false;
  }
}
