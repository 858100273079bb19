/**
 * The built-in mock provider: answers like a real provider's API, with the faults its runtime config asks for
 * (SPEC §7): a share of calls hang until the caller's timeout, answer 503 or answer 429; the rest are accepted
 * once per idempotency key (a repeat gets the first acceptance's id back, see ledger.ts), and a share of
 * those are later reported delivered. With a seed, every draw is a pure function of the seed and the call, so a
 * run's outcomes per message are reproducible however concurrent workers interleave.
 */
import { accepted, type OutboundMessage, type Provider, type ProviderOutcome, rateLimited, type SendOptions, transientError } from "../provider.ts";
import type { MockAcceptance, MockLedger } from "./ledger.ts";

export { type MockAcceptance, type MockLedger, type MockSend, memoryMockLedger } from "./ledger.ts";

/** The mock's config as the provider-mock module stores it, every field present (validated there by zod). */
export interface MockSettings {
  timeout_pct: number;
  error_pct: number;
  ratelimit_pct: number;
  seed: number | null;
  latency_ms: number;
  delivery_report_pct: number;
  /** The mock providers' breaker cool-down in seconds, or null for API_BREAKER_OPEN_SECS (read by the dispatcher). */
  breaker_open_secs?: number | null;
}

export interface MockProviderDeps {
  /** The current config, read at every call: the dispatcher refreshes it from the database once per batch. */
  config: () => MockSettings;
  ledger: MockLedger;
  /** Told of a delivery the mock reports on its own (`delivery_report_pct`); must not throw. */
  onDelivered?: (providerMessageId: string) => void;
  /** How long after an acceptance the delivery report comes; 200 ms when not given. */
  reportDelayMs?: number;
  /** Draws in [0, 1) when the config has no seed; `Math.random` when not given. */
  random?: () => number;
}

/** What this instance answered, for tests and debugging. `accepted` includes the `repeats`. */
export interface MockStats {
  calls: number;
  accepted: number;
  repeats: number;
  rateLimited: number;
  transientErrors: number;
  timeouts: number;
}

/** The `Retry-After` of the mock's 429: far shorter than a real provider's, so tests that inject 429s stay fast. */
export const MOCK_RETRY_AFTER_MS = 100;
const REPORT_DELAY_MS = 200;
/** Bounds the per-key call counters of keys that are never accepted (their messages failed or moved elsewhere). */
const MAX_COUNTED_KEYS = 100_000;

type Fault = "timeout" | "error" | "rate_limited" | "none";

/** Which fault a draw `u` in [0, 100) falls on: the three shares side by side from 0, the rest accepts. */
function faultAt(u: number, c: MockSettings): Fault {
  if (u < c.timeout_pct) return "timeout";
  if (u < c.timeout_pct + c.error_pct) return "error";
  if (u < c.timeout_pct + c.error_pct + c.ratelimit_pct) return "rate_limited";
  return "none";
}

export class MockProvider implements Provider {
  readonly #deps: MockProviderDeps;
  /** How many calls each not yet accepted key has had, oldest first (a Map keeps insertion order). */
  readonly #callsByKey = new Map<string, number>();
  readonly #stats: MockStats = { calls: 0, accepted: 0, repeats: 0, rateLimited: 0, transientErrors: 0, timeouts: 0 };

  constructor(
    readonly name: string,
    deps: MockProviderDeps,
  ) {
    this.#deps = deps;
  }

  async send(_message: OutboundMessage, { idempotencyKey, signal }: SendOptions): Promise<ProviderOutcome> {
    const config = this.#deps.config();
    this.#stats.calls += 1;
    // Drawn before any wait, so without a seed the injected random is consumed in call order.
    const fault = faultAt(this.#draw(config, "outcome", idempotencyKey, this.#nextCall(idempotencyKey)), config);
    if (config.latency_ms > 0) await sleep(config.latency_ms, signal);
    switch (fault) {
      case "timeout":
        this.#stats.timeouts += 1;
        return hang(signal);
      case "error":
        this.#stats.transientErrors += 1;
        return transientError("mock provider: 503 Service Unavailable", 503);
      case "rate_limited":
        this.#stats.rateLimited += 1;
        return rateLimited(MOCK_RETRY_AFTER_MS);
      case "none":
        return this.#accept(config, idempotencyKey);
    }
  }

  stats(): MockStats {
    return { ...this.#stats };
  }

  async #accept(config: MockSettings, idempotencyKey: string): Promise<ProviderOutcome> {
    let acceptance: MockAcceptance | undefined;
    try {
      [acceptance] = await this.#deps.ledger.accept([{ idempotencyKey, provider: this.name, providerMessageId: `mock-${crypto.randomUUID()}` }]);
    } catch (err) {
      // Recorded or not, a retry carries the same key and gets the same answer as any repeat.
      this.#stats.transientErrors += 1;
      return transientError(`mock provider: could not record the send: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!acceptance) throw new Error("the mock ledger answered no acceptance for one send");
    this.#callsByKey.delete(idempotencyKey);
    this.#stats.accepted += 1;
    if (acceptance.first) this.#reportLater(config, idempotencyKey, acceptance.providerMessageId);
    else this.#stats.repeats += 1;
    return accepted(acceptance.providerMessageId);
  }

  #reportLater(config: MockSettings, idempotencyKey: string, providerMessageId: string): void {
    const { onDelivered } = this.#deps;
    if (!onDelivered || config.delivery_report_pct === 0) return;
    if (this.#draw(config, "report", idempotencyKey, 0) >= config.delivery_report_pct) return;
    setTimeout(() => onDelivered(providerMessageId), this.#deps.reportDelayMs ?? REPORT_DELAY_MS).unref();
  }

  /** Which call for this key this is (0 for the first), counted until the key is accepted. */
  #nextCall(idempotencyKey: string): number {
    const n = this.#callsByKey.get(idempotencyKey) ?? 0;
    this.#callsByKey.delete(idempotencyKey);
    this.#callsByKey.set(idempotencyKey, n + 1);
    if (this.#callsByKey.size > MAX_COUNTED_KEYS) this.#callsByKey.delete(this.#callsByKey.keys().next().value!);
    return n;
  }

  /** A draw in [0, 100): seeded, a pure function of the call; otherwise from the injected random. */
  #draw(config: MockSettings, stream: "outcome" | "report", idempotencyKey: string, call: number): number {
    if (config.seed === null) return (this.#deps.random ?? Math.random)() * 100;
    return (seededUnit(`${config.seed}\u0000${stream}\u0000${this.name}\u0000${idempotencyKey}\u0000${call}`) / 2 ** 32) * 100;
  }
}

/**
 * A uniform 32-bit value from a string: FNV-1a (32-bit) over its UTF-16 code units, then the `lowbias32` integer
 * finalizer (xor-shift-multiply, from Chris Wellons' hash prospector), because FNV alone leaves strings that
 * differ only in their last characters (consecutive message ids) too close together in the high bits.
 */
function seededUnit(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Waits `ms`; rejects with the signal's reason as soon as it aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** A provider that never answers: only the caller's timeout (or stop) ends the call, as with a hung API. */
function hang(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}
