// The circuit breaker in front of each provider (SPEC §7): a pure state machine, driven by the clock it is given.

/**
 * `closed`: calls go through. `open`: calls are refused until the cool-down ends. `half_open`: the cool-down
 * ended and exactly one probe call is out; its answer closes or reopens the breaker.
 */
export type BreakerState = "closed" | "open" | "half_open";

export interface BreakerOptions {
  /** Consecutive transient failures that open a closed breaker. */
  failureThreshold: number;
  /** How long an open breaker refuses calls before it lets one probe through. */
  openMs: number;
}

/** What a provider call came to, as the breaker counts it. */
export type BreakerResult = "success" | "failure" | "rate_limited";

/** Everything the breaker remembers; a value, so concurrent workers can share one and replace it atomically. */
export interface Breaker {
  readonly state: BreakerState;
  /** Transient failures in a row while closed. */
  readonly failures: number;
  /** When the breaker last opened (ms), for the cool-down. */
  readonly openedAt: number;
  /** A rate-limited provider is paused, not failed: no call before this time (ms). */
  readonly pausedUntil: number;
}

export const closedBreaker: Breaker = { state: "closed", failures: 0, openedAt: 0, pausedUntil: 0 };

/** The answer to "may I call this provider now?", with the breaker to keep and the transition it made, if any. */
export interface Admission {
  allowed: boolean;
  /** Why a call was refused: the breaker is open, the one probe is already out, or the provider asked to wait. */
  refusal?: "open" | "probing" | "paused";
  /** Time (ms) after which asking again may be allowed. */
  retryAt?: number;
  next: Breaker;
  transition?: BreakerState;
}

/**
 * Asks the breaker for one call at `now`. An open breaker whose cool-down has ended turns half-open and admits
 * this call as its single probe; every other caller is refused until the probe's result is recorded, so
 * concurrent workers cannot all probe a provider that is still down. A provider paused by a rate limit admits
 * nothing before its `Retry-After`, whatever the state.
 */
export function admit(breaker: Breaker, now: number, options: BreakerOptions): Admission {
  if (now < breaker.pausedUntil) return { allowed: false, refusal: "paused", retryAt: breaker.pausedUntil, next: breaker };
  switch (breaker.state) {
    case "closed":
      return { allowed: true, next: breaker };
    case "half_open":
      return { allowed: false, refusal: "probing", next: breaker };
    case "open": {
      const coolDownEnds = breaker.openedAt + options.openMs;
      if (now < coolDownEnds) return { allowed: false, refusal: "open", retryAt: coolDownEnds, next: breaker };
      return { allowed: true, next: { ...breaker, state: "half_open" }, transition: "half_open" };
    }
  }
}

/** The breaker after a call admitted by `admit` ended with `result` at `now`, and the transition it made, if any. */
export interface Recorded {
  next: Breaker;
  transition?: BreakerState;
}

/**
 * Records a call's result. A success closes the breaker and clears its count. A transient failure counts
 * towards the threshold while closed and reopens a half-open breaker at once (the probe failed); one arriving
 * while the breaker is already open changes nothing. A rate limit is
 * not a failure: the provider answered, so it counts as a sign of life (a probe that is rate-limited closes the
 * breaker), and it pauses the provider until `retryAfterMs` has passed (1 s when the provider named no time).
 */
export function record(
  breaker: Breaker,
  result: BreakerResult,
  now: number,
  options: BreakerOptions,
  retryAfterMs?: number,
): Recorded {
  const moved = (next: Breaker): Recorded => (next.state === breaker.state ? { next } : { next, transition: next.state });
  switch (result) {
    case "success":
      return moved({ ...breaker, state: "closed", failures: 0 });
    case "rate_limited": {
      const wait = retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs > 0 ? retryAfterMs : 1000;
      return moved({ ...breaker, state: "closed", failures: 0, pausedUntil: Math.max(breaker.pausedUntil, now + wait) });
    }
    case "failure": {
      // A late failure of a call admitted before the breaker opened does not stretch the cool-down.
      if (breaker.state === "open") return { next: breaker };
      if (breaker.state === "half_open") return moved({ ...breaker, state: "open", openedAt: now });
      const failures = breaker.failures + 1;
      if (failures >= options.failureThreshold) return moved({ ...breaker, state: "open", failures, openedAt: now });
      return { next: { ...breaker, failures } };
    }
  }
}
