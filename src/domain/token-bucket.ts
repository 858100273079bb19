/** What one `take` decided, with the figures the RateLimit-* and Retry-After headers need. */
export interface BucketDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
  /** Seconds until one token is available (0 when allowed). */
  retryAfterSeconds: number;
}

/**
 * Token buckets keyed by a client or sender: capacity `perMinute`, refilled continuously at `perMinute`
 * tokens a minute, so a burst of `perMinute` is allowed (like the older fixed window) without its
 * double burst at window edges. Pure: the caller passes the clock.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly ratePerMs: number;

  constructor(
    readonly perMinute: number,
    private readonly maxKeys = 100_000,
  ) {
    this.ratePerMs = perMinute / 60_000;
  }

  take(key: string, nowMs: number): BucketDecision {
    const bucket = this.buckets.get(key) ?? this.admit(key, nowMs);
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + (nowMs - bucket.at) * this.ratePerMs);
    bucket.at = nowMs;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    return {
      allowed,
      limit: this.perMinute,
      remaining: Math.floor(bucket.tokens),
      resetSeconds: Math.ceil((this.perMinute - bucket.tokens) / this.ratePerMs / 1000),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / this.ratePerMs / 1000)),
    };
  }

  private admit(key: string, nowMs: number) {
    if (this.buckets.size >= this.maxKeys) this.forgetFull(nowMs);
    const bucket = { tokens: this.perMinute, at: nowMs };
    this.buckets.set(key, bucket);
    return bucket;
  }

  /** A bucket that has refilled completely carries no information; dropping it bounds memory. */
  private forgetFull(nowMs: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (nowMs - b.at) * this.ratePerMs >= this.perMinute) this.buckets.delete(key);
    }
    if (this.buckets.size >= this.maxKeys) this.buckets.clear();
  }
}
