import { describe, expect, test } from "bun:test";
import { MOCK_RETRY_AFTER_MS, type MockLedger, MockProvider, type MockProviderDeps, type MockSettings, memoryMockLedger } from "../../src/providers/mock/adapter.ts";
import { deliveryIdempotencyKey, type OutboundMessage, type ProviderOutcome, sendWithTimeout } from "../../src/providers/provider.ts";

const NO_FAULTS: MockSettings = { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null, latency_ms: 0, delivery_report_pct: 0 };

const message = (id: string): OutboundMessage => ({ id, channel: "sms", from: "+12015550100", to: "+12015550101", body: "hi", attachments: [] });

function mock(settings: Partial<MockSettings>, deps: Partial<MockProviderDeps> = {}, name = "sms-mms") {
  const config = { ...NO_FAULTS, ...settings };
  return new MockProvider(name, { config: () => config, ledger: memoryMockLedger(), ...deps });
}

/** A ledger that counts its calls, around the memory one. */
function countingLedger(): MockLedger & { calls: number } {
  const inner = memoryMockLedger();
  const ledger = { calls: 0, accept: (entries: Parameters<MockLedger["accept"]>[0]) => (ledger.calls++, inner.accept(entries)) };
  return ledger;
}

const aborted = () => AbortSignal.abort(new Error("timed out"));

/**
 * One call's outcome as a word, with an already-aborted signal: a hung call then rejects at once, which is what
 * the dispatcher's timeout would make of it, so thousands of calls run without waiting.
 */
async function outcomeOf(provider: MockProvider, id: string): Promise<string> {
  try {
    const outcome = await provider.send(message(id), { idempotencyKey: deliveryIdempotencyKey(id), signal: aborted() });
    return outcome.kind;
  } catch {
    return "timeout";
  }
}

/** Calls a message until it is accepted (at most 50 calls) and answers its outcomes in order. */
async function untilAccepted(provider: MockProvider, id: string): Promise<string[]> {
  const seen: string[] = [];
  while (seen.at(-1) !== "accepted" && seen.length < 50) seen.push(await outcomeOf(provider, id));
  return seen;
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => String(1000 + i));

function tally(outcomes: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
  return counts;
}

describe("unseeded outcomes", () => {
  test("fall on the configured shares: 10,000 evenly spread draws give exactly the percentages", async () => {
    const draws = Array.from({ length: 10_000 }, (_, i) => i / 10_000);
    const provider = mock({ timeout_pct: 10, error_pct: 20, ratelimit_pct: 30 }, { random: () => draws.pop()! });
    const outcomes = await Promise.all(ids(10_000).map((id) => outcomeOf(provider, id)));
    expect(tally(outcomes)).toEqual({ timeout: 1000, transient_error: 2000, rate_limited: 3000, accepted: 4000 });
    expect(provider.stats()).toEqual({ calls: 10_000, accepted: 4000, repeats: 0, rateLimited: 3000, transientErrors: 2000, timeouts: 1000 });
  });

  test("use Math.random when no random is injected, and still roughly match the shares", async () => {
    const provider = mock({ error_pct: 50 });
    const counts = tally(await Promise.all(ids(4000).map((id) => outcomeOf(provider, id))));
    expect(counts.transient_error! / 4000).toBeWithin(0.45, 0.55);
  });

  test("answer the documented shapes: 503, a 429 with a short Retry-After, a mock- id", async () => {
    const send = (settings: Partial<MockSettings>) => mock(settings).send(message("1"), { idempotencyKey: "k", signal: new AbortController().signal });
    expect(await send({ error_pct: 100 })).toEqual({ kind: "transient_error", reason: "mock provider: 503 Service Unavailable", status: 503 });
    expect(await send({ ratelimit_pct: 100 })).toEqual({ kind: "rate_limited", retryAfterMs: MOCK_RETRY_AFTER_MS });
    expect(await send({})).toEqual({ kind: "accepted", providerMessageId: expect.stringMatching(/^mock-[0-9a-f-]{36}$/) });
  });

  test("the config is read at every call, so a change applies to the very next one", async () => {
    let config: MockSettings = { ...NO_FAULTS, error_pct: 100 };
    const provider = new MockProvider("sms-mms", { config: () => config, ledger: memoryMockLedger() });
    expect(await outcomeOf(provider, "1")).toBe("transient_error");
    config = { ...config, error_pct: 0, ratelimit_pct: 100 };
    expect(await outcomeOf(provider, "1")).toBe("rate_limited");
    config = NO_FAULTS;
    expect(await outcomeOf(provider, "1")).toBe("accepted");
  });
});

describe("seeded outcomes", () => {
  const faulty = { timeout_pct: 20, error_pct: 20, ratelimit_pct: 20 };

  test("roughly match the shares over 10,000 messages", async () => {
    const provider = mock({ ...faulty, seed: 7 });
    const counts = tally(await Promise.all(ids(10_000).map((id) => outcomeOf(provider, id))));
    for (const kind of ["timeout", "transient_error", "rate_limited"]) expect(counts[kind]! / 10_000).toBeWithin(0.18, 0.22);
    expect(counts.accepted! / 10_000).toBeWithin(0.38, 0.42);
  });

  test("the same seed gives every message the same sequence of outcomes, however the calls interleave", async () => {
    const keys = ids(200);
    const one = mock({ ...faulty, seed: 42 });
    const sequential: Record<string, string[]> = {};
    for (const id of keys) sequential[id] = await untilAccepted(one, id);

    // A second instance, messages in reverse order and all in flight at once.
    const other = mock({ ...faulty, seed: 42 });
    const concurrent = Object.fromEntries(await Promise.all([...keys].reverse().map(async (id) => [id, await untilAccepted(other, id)])));
    expect(concurrent).toEqual(sequential);
    // Not trivially equal: some messages needed several attempts.
    expect(Math.max(...Object.values(sequential).map((s) => s.length))).toBeGreaterThan(2);
  });

  test("a different seed, or another provider name, gives different sequences", async () => {
    const keys = ids(100);
    const run = async (provider: MockProvider) => Promise.all(keys.map((id) => untilAccepted(provider, id)));
    const base = await run(mock({ ...faulty, seed: 1 }));
    expect(await run(mock({ ...faulty, seed: 1 }))).toEqual(base);
    expect(await run(mock({ ...faulty, seed: 2 }))).not.toEqual(base);
    expect(await run(mock({ ...faulty, seed: 1 }, {}, "email"))).not.toEqual(base);
  });

  test("seed 0 is a seed, not the absence of one: the injected random is never drawn", async () => {
    let draws = 0;
    const provider = mock({ ...faulty, seed: 0, delivery_report_pct: 50 }, { random: () => (draws++, 0.5), onDelivered: () => {} });
    await Promise.all(ids(100).map((id) => untilAccepted(provider, id)));
    expect(provider.stats().accepted).toBe(100);
    expect(draws).toBe(0);
  });
});

describe("timeouts and latency", () => {
  test("timeout_pct 100 never answers: the caller's timeout turns it into a transient error, and nothing is accepted", async () => {
    const ledger = countingLedger();
    const provider = mock({ timeout_pct: 100 }, { ledger });
    const started = performance.now();
    const outcome = await sendWithTimeout(provider, message("7"), 50);
    const elapsed = performance.now() - started;
    expect(outcome).toEqual({ kind: "transient_error", reason: "no answer within 50 ms" });
    expect(elapsed).toBeGreaterThanOrEqual(45);
    expect(elapsed).toBeLessThan(500);
    expect(ledger.calls).toBe(0);
    expect(provider.stats().timeouts).toBe(1);
  });

  test("a hung call rejects with the signal's reason when it is aborted", async () => {
    const controller = new AbortController();
    const pending = mock({ timeout_pct: 100 }).send(message("1"), { idempotencyKey: "k", signal: controller.signal });
    const reason = new Error("stopping");
    setTimeout(() => controller.abort(reason), 10);
    await expect(pending).rejects.toBe(reason);
  });

  test("latency_ms delays every answer", async () => {
    const provider = mock({ latency_ms: 80 });
    const started = performance.now();
    const outcome = await provider.send(message("1"), { idempotencyKey: "k", signal: new AbortController().signal });
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    expect(outcome.kind).toBe("accepted");
  });

  test("the latency wait is abortable: it rejects with the reason at once and records nothing", async () => {
    const ledger = countingLedger();
    const provider = mock({ latency_ms: 5000 }, { ledger });
    const controller = new AbortController();
    const reason = new Error("timed out");
    const started = performance.now();
    setTimeout(() => controller.abort(reason), 20);
    await expect(provider.send(message("1"), { idempotencyKey: "k", signal: controller.signal })).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(ledger.calls).toBe(0);
  });

  test("through sendWithTimeout a latency longer than the timeout is a transient error", async () => {
    const outcome = await sendWithTimeout(mock({ latency_ms: 1000 }), message("1"), 30);
    expect(outcome).toEqual({ kind: "transient_error", reason: "no answer within 30 ms" });
  });
});

describe("idempotency", () => {
  test("a repeat of an accepted key answers the first acceptance's id and counts as a repeat", async () => {
    const provider = mock({});
    const send = () => provider.send(message("9"), { idempotencyKey: deliveryIdempotencyKey("9"), signal: new AbortController().signal });
    const first = (await send()) as Extract<ProviderOutcome, { kind: "accepted" }>;
    expect(await send()).toEqual(first);
    expect(await send()).toEqual(first);
    expect(provider.stats()).toMatchObject({ calls: 3, accepted: 3, repeats: 2 });
  });

  test("a ledger that fails answers a transient error, never an exception", async () => {
    const ledger: MockLedger = { accept: () => Promise.reject(new Error("connection lost")) };
    const provider = mock({}, { ledger });
    const outcome = await provider.send(message("1"), { idempotencyKey: "k", signal: new AbortController().signal });
    expect(outcome).toEqual({ kind: "transient_error", reason: "mock provider: could not record the send: connection lost" });
    expect(provider.stats().transientErrors).toBe(1);
  });
});

describe("delivery reports", () => {
  const send = (provider: MockProvider, id: string) =>
    provider.send(message(id), { idempotencyKey: deliveryIdempotencyKey(id), signal: new AbortController().signal });

  test("at 100% each first acceptance is reported delivered once, after the delay; repeats are not", async () => {
    const reported: string[] = [];
    const provider = mock({ delivery_report_pct: 100 }, { onDelivered: (id) => reported.push(id), reportDelayMs: 20 });
    const answers = await Promise.all(ids(5).map((id) => send(provider, id)));
    await send(provider, ids(1)[0]!);
    expect(reported).toEqual([]);
    await Bun.sleep(60);
    expect(reported.sort()).toEqual(answers.map((a) => (a as Extract<ProviderOutcome, { kind: "accepted" }>).providerMessageId!).sort());
  });

  test("at 0% nothing is reported", async () => {
    const reported: string[] = [];
    const provider = mock({ delivery_report_pct: 0 }, { onDelivered: (id) => reported.push(id), reportDelayMs: 1 });
    await Promise.all(ids(50).map((id) => send(provider, id)));
    await Bun.sleep(20);
    expect(reported).toEqual([]);
  });

  test("with a seed, which messages are reported is reproducible, and about the configured share", async () => {
    const reportedOf = async () => {
      const reported: string[] = [];
      const provider = mock({ delivery_report_pct: 30, seed: 5 }, { onDelivered: (id) => reported.push(id), reportDelayMs: 1 });
      const byId = new Map<string, string>();
      for (const id of ids(1000)) byId.set((await send(provider, id) as Extract<ProviderOutcome, { kind: "accepted" }>).providerMessageId!, id);
      await Bun.sleep(20);
      return reported.map((p) => byId.get(p)!).sort();
    };
    const first = await reportedOf();
    expect(first.length / 1000).toBeWithin(0.25, 0.35);
    expect(await reportedOf()).toEqual(first);
  });
});
