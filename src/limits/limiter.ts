/**
 * The rate limits of SPEC §8 and §3 behind one interface, so that the HTTP layer, the send path and the delivery
 * guards ask the same way whether the buckets live in this process (`LocalLimiter`) or in Redis, shared by every
 * instance (`SharedLimiter` in shared.ts).
 *
 * A bucket is named by what it limits (`key:<api key id>`, `ip:<address>`, `sender:<transport>:<address>`,
 * `provider:<name>`, `webhook:<provider>`) and shaped by its capacity and refill rate, which the caller passes with
 * every take: a key's own limit can change (`messaging keys update`) without anything being rebuilt.
 */
import { type BucketDecision, TokenBuckets } from "../domain/token-bucket.ts";
import { AuthFailures, type AuthThrottle } from "../security/auth-failures.ts";

export interface BucketShape {
  /** Most tokens held: the burst. */
  capacity: number;
  /** Tokens added per millisecond. */
  ratePerMs: number;
}

/** A bucket of `n` a minute with a burst of `n` (the per-key, per-IP and per-sender limits). */
export const perMinute = (n: number): BucketShape => ({ capacity: n, ratePerMs: n / 60_000 });

/** A bucket of `n` a second with a burst of `n`, at least one (a provider's `max_per_second`). */
export const perSecond = (n: number): BucketShape => ({ capacity: Math.max(1, n), ratePerMs: n / 1000 });

export interface Limiter {
  /** Takes one token from the named bucket, or says when one will be there. */
  take(name: string, shape: BucketShape): Promise<BucketDecision>;
  /**
   * The same take answered synchronously, offered by a limiter whose buckets live in this process: a caller on
   * the request path then needs no promise for a request it admits (the shared limiter has none).
   */
  takeNow?(name: string, shape: BucketShape): BucketDecision;
}

/** Counts failed authentications per client (security/auth-failures.ts), in this process or shared. */
export interface FailureCounter {
  check(client: string): Promise<AuthThrottle>;
  recordFailure(client: string): Promise<AuthThrottle>;
}

/** Where the limits live, for the process: what `serve` builds once and hands to the API and the dispatcher. */
export interface Limits {
  limiter: Limiter;
  authFailures: FailureCounter;
  /** `"shared"` while Redis answers, `"local"` without Redis or while it does not; for /readyz and logs. */
  mode(): "shared" | "local";
  /** Null when ready; otherwise why not (only when Redis is configured as required and does not answer). */
  unready(): string | null;
  close(): void;
}

/** Buckets in this process, one table per shape. */
export class LocalLimiter implements Limiter {
  private readonly tables = new Map<string, TokenBuckets>();
  /** The table of a shape object already seen: callers keep theirs, and its id is a float printed per request. */
  private readonly tableOfShape = new WeakMap<BucketShape, TokenBuckets>();

  constructor(private readonly now: () => number = Date.now) {}

  take(name: string, shape: BucketShape): Promise<BucketDecision> {
    return Promise.resolve(this.takeNow(name, shape));
  }

  /** The same take, answered synchronously (the fallback of the shared limiter uses it too). */
  takeNow(name: string, shape: BucketShape): BucketDecision {
    let table = this.tableOfShape.get(shape);
    if (!table) {
      const id = `${shape.capacity}/${shape.ratePerMs}`;
      table = this.tables.get(id);
      if (!table) {
        table = new TokenBuckets(shape.capacity, 100_000, shape.ratePerMs);
        this.tables.set(id, table);
      }
      this.tableOfShape.set(shape, table);
    }
    return table.take(name, this.now());
  }
}

/** The auth-failure counter of this process, behind the async interface. */
export class LocalFailureCounter implements FailureCounter {
  private readonly failures: AuthFailures;

  constructor(
    options: { limit: number; windowSecs: number },
    private readonly now: () => number = Date.now,
  ) {
    this.failures = new AuthFailures(options);
  }

  check(client: string): Promise<AuthThrottle> {
    return Promise.resolve(this.failures.check(client, this.now()));
  }

  recordFailure(client: string): Promise<AuthThrottle> {
    return Promise.resolve(this.failures.recordFailure(client, this.now()));
  }
}

/** Every limit in this process: what one instance without `MESSAGING_REDIS_URL` uses, as before. */
export function localLimits(options: { authFailureLimit: number; authFailureWindowSecs: number }): Limits {
  return {
    limiter: new LocalLimiter(),
    authFailures: new LocalFailureCounter({ limit: options.authFailureLimit, windowSecs: options.authFailureWindowSecs }),
    mode: () => "local",
    unready: () => null,
    close: () => {},
  };
}
