/**
 * What stands in front of one provider in this process: its circuit breaker (domain/circuit-breaker.ts), a
 * bound on unconfirmed calls, and its pacing (a token bucket when the provider declares a rate; with Redis, a
 * second bucket shared by every instance, so the rate holds in total). Breakers are
 * per process by design: each instance learns on its own that a provider is down, which costs at most one
 * threshold of failed calls per instance and needs no coordination through the database.
 *
 * The breaker alone would let a whole claimed batch out at once: a closed breaker admits every caller, and a
 * hundred concurrent calls to a provider that has just gone down all fail before the first failure is counted.
 * So a closed breaker that has not just seen a success (at start, or after a failure) lets out only as many
 * calls as it could still absorb before opening (`threshold − failures`); the others wait for an answer. A
 * healthy provider is not limited at all, and one that is failing costs at most threshold + 1 calls (the
 * threshold, then one probe) per open period.
 */
import type { BucketDecision } from "../domain/token-bucket.ts";
import { admit, type Breaker, type BreakerOptions, type BreakerResult, type BreakerState, closedBreaker, record } from "../domain/circuit-breaker.ts";

export type Refusal = "open" | "probing" | "paused" | "paced";

export type Entry = { allowed: true; release: (result: BreakerResult, retryAfterMs?: number) => void } | { allowed: false; refusal: Refusal; retryAt?: number };

export interface GuardOptions extends BreakerOptions {
  /** The cool-down in force now, when it may change while running (the mock's `breaker_open_secs`); else `openMs`. */
  openMsNow?: () => number | undefined;
  /** Calls per second; absent: unlimited. */
  maxPerSecond?: number;
  /**
   * The provider's bucket shared by every instance (Redis, limits/shared.ts), asked after this process's own
   * bucket allowed a call: with several instances the provider then gets `maxPerSecond` in total, not per
   * instance. Absent: this process's bucket alone.
   */
  sharedBucket?: () => Promise<BucketDecision>;
  now?: () => number;
  onTransition?: (to: BreakerState, from: BreakerState) => void;
}

export class ProviderGuard {
  private breaker: Breaker = closedBreaker;
  private inFlight = 0;
  /** The last answer was a success: calls go out without the slow-start bound. */
  private healthy = false;
  private waiters: (() => void)[] = [];
  private tokens: number;
  private tokensAt: number;
  private readonly now: () => number;

  constructor(private readonly options: GuardOptions) {
    this.now = options.now ?? Date.now;
    this.tokens = this.burst();
    this.tokensAt = this.now();
  }

  get state(): BreakerState {
    return this.breaker.state;
  }

  /**
   * Asks to call the provider now. Resolves with a permit (call `release` with the answer exactly once) or a
   * refusal with the time after which asking again may succeed. Waits only for the slow-start bound, which an
   * answer (bounded by the provider timeout) always lifts.
   */
  async enter(): Promise<Entry> {
    for (;;) {
      const now = this.now();
      const admission = admit(this.breaker, now, this.breakerOptions());
      if (!admission.allowed) return { allowed: false, refusal: admission.refusal!, ...(admission.retryAt ? { retryAt: admission.retryAt } : {}) };
      if (admission.next.state === "closed" && !this.healthy && this.inFlight >= this.options.failureThreshold - this.breaker.failures) {
        await new Promise<void>((resolve) => this.waiters.push(resolve));
        continue;
      }
      if (!this.takeToken(now)) return { allowed: false, refusal: "paced", retryAt: now + this.msPerToken() };
      let next = admission.next;
      if (this.options.sharedBucket) {
        const shared = await this.options.sharedBucket();
        const after = this.now();
        if (!shared.allowed) {
          this.emptyFor(after, shared.retryAfterMs);
          return { allowed: false, refusal: "paced", retryAt: after + shared.retryAfterMs };
        }
        // Other calls may have moved the breaker while the shared bucket answered: ask it again.
        const again = admit(this.breaker, after, this.breakerOptions());
        if (!again.allowed) return { allowed: false, refusal: again.refusal!, ...(again.retryAt ? { retryAt: again.retryAt } : {}) };
        next = again.next;
      }
      this.move(next);
      this.inFlight += 1;
      let released = false;
      return {
        allowed: true,
        release: (result, retryAfterMs) => {
          if (released) return;
          released = true;
          this.inFlight -= 1;
          this.healthy = result !== "failure";
          this.move(record(this.breaker, result, this.now(), this.breakerOptions(), retryAfterMs).next);
          const waiting = this.waiters;
          this.waiters = [];
          for (const wake of waiting) wake();
        },
      };
    }
  }

  /** Calls the bucket would allow right now (Infinity without a rate). */
  capacity(): number {
    if (this.options.maxPerSecond === undefined) return Infinity;
    this.refill(this.now());
    return Math.floor(this.tokens);
  }

  /** Milliseconds until one more call is allowed by the rate (0 when one is). */
  msUntilToken(): number {
    if (this.options.maxPerSecond === undefined) return 0;
    this.refill(this.now());
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * this.msPerToken());
  }

  private breakerOptions(): BreakerOptions {
    const openMs = this.options.openMsNow?.();
    return openMs === undefined ? this.options : { failureThreshold: this.options.failureThreshold, openMs };
  }

  private move(next: Breaker): void {
    const from = this.breaker.state;
    this.breaker = next;
    if (next.state !== from) this.options.onTransition?.(next.state, from);
  }

  private burst(): number {
    return Math.max(1, this.options.maxPerSecond ?? 0);
  }

  private msPerToken(): number {
    return 1000 / (this.options.maxPerSecond ?? Infinity);
  }

  private refill(now: number): void {
    if (this.options.maxPerSecond === undefined) return;
    this.tokens = Math.min(this.burst(), this.tokens + ((now - this.tokensAt) * this.options.maxPerSecond) / 1000);
    this.tokensAt = now;
  }

  /** The shared bucket is empty for `ms`: so is this process's, so that `capacity` and `msUntilToken` say so. */
  private emptyFor(now: number, ms: number): void {
    if (this.options.maxPerSecond === undefined) return;
    this.refill(now);
    this.tokens = Math.min(this.tokens, 1 - (ms * this.options.maxPerSecond) / 1000);
  }

  private takeToken(now: number): boolean {
    if (this.options.maxPerSecond === undefined) return true;
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
