import { describe, expect, test } from "bun:test";
import {
  accepted,
  deliveryIdempotencyKey,
  type OutboundMessage,
  permanentError,
  type Provider,
  type ProviderOutcome,
  rateLimited,
  recipientOptedOut,
  type SendOptions,
  sendWithTimeout,
  transientError,
} from "../../src/providers/provider.ts";

const message: OutboundMessage = { id: "42", channel: "sms", from: "+12015550100", to: "+12015550101", body: "hi", attachments: [] };

/** A provider whose answer the test chooses, recording the options of every call. */
function scripted(answer: (options: SendOptions) => Promise<ProviderOutcome>): Provider & { calls: SendOptions[] } {
  const calls: SendOptions[] = [];
  return {
    name: "scripted",
    calls,
    send: (_message, options) => {
      calls.push(options);
      return answer(options);
    },
  };
}

describe("provider outcomes", () => {
  test("carry exactly the fields given", () => {
    expect(accepted("SM1")).toEqual({ kind: "accepted", providerMessageId: "SM1" });
    expect(transientError("bad gateway", 502)).toEqual({ kind: "transient_error", reason: "bad gateway", status: 502 });
    expect(transientError("reset")).toEqual({ kind: "transient_error", reason: "reset" });
    expect(permanentError("invalid number", 400)).toEqual({ kind: "permanent_error", reason: "invalid number", status: 400 });
    expect(recipientOptedOut("unsubscribed", 400)).toEqual({ kind: "permanent_error", reason: "unsubscribed", status: 400, recipientOptedOut: true });
    expect(recipientOptedOut("unsubscribed")).toEqual({ kind: "permanent_error", reason: "unsubscribed", recipientOptedOut: true });
  });

  test.each([
    [1500, { kind: "rate_limited", retryAfterMs: 1500 }],
    [0, { kind: "rate_limited", retryAfterMs: 0 }],
    [undefined, { kind: "rate_limited" }],
    [-1, { kind: "rate_limited" }],
    [Number.NaN, { kind: "rate_limited" }],
    [Number.POSITIVE_INFINITY, { kind: "rate_limited" }],
  ])("a rate limit with Retry-After %p ms is %p", (retryAfterMs, outcome) => {
    expect(rateLimited(retryAfterMs)).toEqual(outcome as ProviderOutcome);
  });
});

describe("deliveryIdempotencyKey", () => {
  test("depends on the message id alone, so every retry of one message carries the same key", () => {
    expect(deliveryIdempotencyKey("42")).toBe(deliveryIdempotencyKey("42"));
    expect(deliveryIdempotencyKey("42")).not.toBe(deliveryIdempotencyKey("43"));
  });
});

describe("sendWithTimeout", () => {
  test("passes the message's idempotency key and answers what the provider answered", async () => {
    const provider = scripted(async () => accepted("SM42"));
    expect(await sendWithTimeout(provider, message, 1000)).toEqual(accepted("SM42"));
    expect(await sendWithTimeout(provider, message, 1000)).toEqual(accepted("SM42"));
    expect(provider.calls.map((c) => c.idempotencyKey)).toEqual([deliveryIdempotencyKey("42"), deliveryIdempotencyKey("42")]);
  });

  test("a provider that never answers is a transient error once the timeout runs out, and its signal is aborted", async () => {
    const provider = scripted(() => new Promise(() => {}));
    const outcome = await sendWithTimeout(provider, message, 50);
    expect(outcome).toEqual({ kind: "transient_error", reason: "no answer within 50 ms" });
    expect(provider.calls[0]!.signal.aborted).toBe(true);
  });

  test("an adapter that throws is a transient error, never an exception", async () => {
    const provider = scripted(async () => {
      throw new SyntaxError("Unexpected token < in JSON");
    });
    expect(await sendWithTimeout(provider, message, 1000)).toEqual({
      kind: "transient_error",
      reason: "the provider adapter failed: Unexpected token < in JSON",
    });
  });

  test("a permanent error's opt-out flag passes when it is a boolean; anything else there makes the answer garbage", async () => {
    const flagged = recipientOptedOut("unsubscribed", 400);
    expect(await sendWithTimeout(scripted(async () => flagged), message, 1000)).toEqual(flagged);
    const garbage = { kind: "permanent_error", reason: "unsubscribed", recipientOptedOut: "yes" } as unknown as ProviderOutcome;
    expect(await sendWithTimeout(scripted(async () => garbage), message, 1000)).toEqual({
      kind: "transient_error",
      reason: "the provider adapter answered something that is not an outcome",
    });
  });

  test("stopping the process aborts the call and answers a transient error (retried later with the same key)", async () => {
    const stop = new AbortController();
    const provider = scripted(() => new Promise(() => {}));
    const pending = sendWithTimeout(provider, message, 10_000, stop.signal);
    stop.abort();
    expect(await pending).toEqual({ kind: "transient_error", reason: "stopped before the provider answered" });
    expect(provider.calls[0]!.signal.aborted).toBe(true);
  });
});
