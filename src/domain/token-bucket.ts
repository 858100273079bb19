/** What one `take` decided, with the figures the RateLimit-* and Retry-After headers need. */
export interface BucketDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
  /** Seconds until one token is available (0 when allowed). */
  retryAfterSeconds: number;
  /** The same in milliseconds, for pacing finer than a second (0 when allowed). */
  retryAfterMs: number;
}

/**
 * What a bucket of `capacity` refilling at `ratePerMs` decided, with `tokens` left after the take: the same
 * figures whether the bucket lives in this process or in Redis (limits/shared.ts).
 */
export function bucketDecision(allowed: boolean, tokens: number, capacity: number, ratePerMs: number): BucketDecision {
  return {
    allowed,
    limit: capacity,
    remaining: Math.max(0, Math.floor(tokens)),
    resetSeconds: Math.max(0, Math.ceil((capacity - tokens) / ratePerMs / 1000)),
    retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / ratePerMs / 1000)),
    retryAfterMs: allowed ? 0 : Math.max(1, Math.ceil((1 - tokens) / ratePerMs)),
  };
}

/**
 * Token buckets keyed by a client or sender: capacity `perMinute`, refilled continuously at `perMinute`
 * tokens a minute (or at `ratePerMs` when given), so a burst of `perMinute` is allowed (like the older fixed
 * window) without its double burst at window edges. Pure: the caller passes the clock.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number; placed: number }>();
  private readonly ratePerMs: number;
  /** Buckets placed (set at the end of the map) so far: a bucket's `placed` is this count when it was. */
  private placements = 0;

  constructor(
    readonly perMinute: number,
    private readonly maxKeys = 100_000,
    ratePerMs?: number,
  ) {
    this.ratePerMs = ratePerMs ?? perMinute / 60_000;
  }

  take(key: string, nowMs: number): BucketDecision {
    const bucket = this.touch(key) ?? this.admit(key, nowMs);
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + Math.max(0, nowMs - bucket.at) * this.ratePerMs);
    bucket.at = Math.max(bucket.at, nowMs);
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    return bucketDecision(allowed, bucket.tokens, this.perMinute, this.ratePerMs);
  }

  /** Buckets held now; never more than `maxKeys`. */
  get size(): number {
    return this.buckets.size;
  }

  /**
   * The key's bucket, moved to the end of the map once fewer than half the map's bound of buckets were placed
   * after it, so that iteration order stays close to least recently used first. Moving it on every take (a delete
   * and a set) cost more than the take itself, twice per send (the client's and the sender's buckets). A bucket
   * left in place has at most maxKeys/2 buckets after it, so the tenth that makeRoom forgets first never reaches
   * it: what is forgotten was unused for at least 0.4 × maxKeys placements.
   */
  private touch(key: string) {
    const bucket = this.buckets.get(key);
    if (bucket && this.placements - bucket.placed >= this.maxKeys / 2) {
      this.buckets.delete(key);
      this.buckets.set(key, bucket);
      bucket.placed = ++this.placements;
    }
    return bucket;
  }

  private admit(key: string, nowMs: number) {
    if (this.buckets.size >= this.maxKeys) this.makeRoom(nowMs);
    const bucket = { tokens: this.perMinute, at: nowMs, placed: ++this.placements };
    this.buckets.set(key, bucket);
    return bucket;
  }

  /**
   * A bucket that has refilled completely carries no information, so those go first. If that frees less
   * than a tenth of the map (a flood of fresh keys), the least recently used go until a tenth is free:
   * they are the nearest to full, and the clients still hammering keep their empty buckets, where
   * clearing the whole map would hand every one of them a full budget. Freeing a tenth at a time keeps
   * the O(n) scan to once per maxKeys/10 admissions.
   */
  private makeRoom(nowMs: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (nowMs - b.at) * this.ratePerMs >= this.perMinute) this.buckets.delete(key);
    }
    const target = this.maxKeys - Math.max(1, Math.floor(this.maxKeys / 10));
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(key);
    }
  }
}
