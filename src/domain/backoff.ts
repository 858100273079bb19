// How long the delivery engine waits before retrying a send.

/** Inputs of a retry delay; `random` is injected so tests are deterministic. */
export interface RetryDelayOptions {
  baseMs: number;
  capMs: number;
  random: () => number;
  retryAfterMs?: number | null;
}

/**
 * Computes the wait before retry `attempt` (1-based) using exponential
 * backoff with full jitter, which spreads retries of many failed messages
 * instead of having them hit a recovering provider in lockstep. A provider's
 * `Retry-After` is a floor the provider asked for, so it wins even over the
 * cap; otherwise the delay never exceeds `capMs`. A missing, non-positive or
 * non-finite `retryAfterMs` is ignored. Returns whole milliseconds.
 */
export function retryDelayMs(attempt: number, opts: RetryDelayOptions): number {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`attempt must be an integer ≥ 1, got ${attempt}`);
  }
  const { baseMs, capMs, random, retryAfterMs } = opts;
  if (!(baseMs >= 0) || !(capMs >= 0) || !Number.isFinite(baseMs) || !Number.isFinite(capMs)) {
    throw new RangeError(`baseMs and capMs must be finite and ≥ 0, got ${baseMs} and ${capMs}`);
  }
  // Clamping the exponent keeps base * 2^n finite-or-Infinity, never NaN.
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, 1023));
  const r = Math.min(Math.max(random(), 0), 1);
  const jittered = Math.floor(r * ceiling);
  if (retryAfterMs == null || !Number.isFinite(retryAfterMs) || retryAfterMs <= 0) return jittered;
  return Math.max(jittered, Math.ceil(retryAfterMs));
}
