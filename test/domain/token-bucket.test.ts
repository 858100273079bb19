import { describe, expect, test } from "bun:test";
import { TokenBuckets } from "../../src/domain/token-bucket.ts";

// Pure: every `take` is given the clock, so refill is proven without waiting.
const drain = (b: TokenBuckets, key: string, n: number, at = 0) => Array.from({ length: n }, () => b.take(key, at));

describe("burst", () => {
  test.each([1, 5, 120])("a new key may take exactly its capacity (%i) at once, then is refused", (perMinute) => {
    const b = new TokenBuckets(perMinute);
    expect(drain(b, "k", perMinute).every((d) => d.allowed)).toBe(true);
    expect(b.take("k", 0).allowed).toBe(false);
  });

  test("remaining counts down to 0 and limit is the per-minute figure", () => {
    const b = new TokenBuckets(3);
    expect(drain(b, "k", 3).map((d) => [d.limit, d.remaining])).toEqual([
      [3, 2],
      [3, 1],
      [3, 0],
    ]);
  });

  test("keys are independent", () => {
    const b = new TokenBuckets(2);
    drain(b, "a", 2);
    expect(b.take("a", 0).allowed).toBe(false);
    expect(b.take("b", 0).allowed).toBe(true);
  });
});

describe("refill", () => {
  test("refills continuously at perMinute tokens a minute: 60/min gives one token a second", () => {
    const b = new TokenBuckets(60);
    drain(b, "k", 60);
    expect(b.take("k", 999).allowed).toBe(false);
    expect(b.take("k", 1000).allowed).toBe(true);
    expect(b.take("k", 1000).allowed).toBe(false);
  });

  test("a refused take does not spend a token", () => {
    const b = new TokenBuckets(60);
    drain(b, "k", 60);
    for (let at = 100; at < 1000; at += 100) expect(b.take("k", at).allowed).toBe(false);
    // Nine refusals later the token still arrives on time (one millisecond of slack for float sums).
    expect(b.take("k", 1001).allowed).toBe(true);
  });

  test("never holds more than its capacity, however long it rests", () => {
    const b = new TokenBuckets(5);
    drain(b, "k", 5);
    expect(b.take("k", 3_600_000).remaining).toBe(4);
    expect(drain(b, "k", 4, 3_600_000).every((d) => d.allowed)).toBe(true);
    expect(b.take("k", 3_600_000).allowed).toBe(false);
  });

  test("half a minute refills half the capacity", () => {
    const b = new TokenBuckets(10);
    drain(b, "k", 10);
    expect(drain(b, "k", 5, 30_000).every((d) => d.allowed)).toBe(true);
    expect(b.take("k", 30_000).allowed).toBe(false);
  });
});

describe("retryAfter and reset", () => {
  test("an allowed take has retryAfterSeconds 0", () => {
    expect(new TokenBuckets(5).take("k", 0).retryAfterSeconds).toBe(0);
  });

  test("a refusal says how many seconds until one token: 6/min → 10 s", () => {
    const b = new TokenBuckets(6);
    drain(b, "k", 6);
    expect(b.take("k", 0).retryAfterSeconds).toBe(10);
    expect(b.take("k", 4_000).retryAfterSeconds).toBe(6);
  });

  test("retryAfterSeconds is at least 1 even when the token is milliseconds away", () => {
    const b = new TokenBuckets(60);
    drain(b, "k", 60);
    expect(b.take("k", 999).retryAfterSeconds).toBe(1);
  });

  test("resetSeconds is the time until the bucket is full again", () => {
    const b = new TokenBuckets(5);
    expect(b.take("k", 0).resetSeconds).toBe(12); // one token spent, 12 s per token at 5/min
    drain(b, "k", 4);
    expect(b.take("k", 0).resetSeconds).toBe(60);
    expect(b.take("k", 30_000).resetSeconds).toBe(42); // 2.5 refilled, 1 spent → 3.5 missing × 12 s
  });

  test("a fresh key is reported full after its first take up to rounding", () => {
    const d = new TokenBuckets(120).take("k", 0);
    expect(d).toEqual({ allowed: true, limit: 120, remaining: 119, resetSeconds: 1, retryAfterSeconds: 0, retryAfterMs: 0 });
  });
});

describe("memory bound (maxKeys)", () => {
  const size = (b: TokenBuckets) => b.size;

  test("at maxKeys, admitting a new key forgets the buckets that have refilled, and keeps the others", () => {
    const b = new TokenBuckets(60, 2);
    drain(b, "drained", 60, 0);
    b.take("refilled", 0);
    // At 1 s "refilled" is full again; "drained" holds one token.
    b.take("new", 1000);
    expect(size(b)).toBe(2);
    // "drained" kept its state: one token, then refused.
    expect(b.take("drained", 1000).allowed).toBe(true);
    expect(b.take("drained", 1000).allowed).toBe(false);
  });

  test("when none is full, the least recently used are forgotten and the recently used keep their state", () => {
    const b = new TokenBuckets(60, 10);
    for (let i = 0; i < 10; i++) drain(b, `k${i}`, 60, 0);
    expect(b.take("k0", 0).allowed).toBe(false); // k0 is now the most recently used
    b.take("new", 0);
    expect(b.size).toBe(10);
    // k1 was the least recently used: forgotten, so it starts again with a full bucket.
    expect(b.take("k1", 0).allowed).toBe(true);
    expect(b.take("k1", 0).remaining).toBe(58);
    // k0 kept its empty bucket.
    expect(b.take("k0", 0).allowed).toBe(false);
  });

  test("a bucket used again soon after it was placed keeps its state, though it is not moved", () => {
    const b = new TokenBuckets(60, 10);
    for (let i = 0; i < 10; i++) drain(b, `k${i}`, 60, 0);
    // k6 was placed 3 placements ago, fewer than maxKeys / 2: it stays where it is, and k0 is still the oldest.
    expect(b.take("k6", 0).allowed).toBe(false);
    b.take("new", 0);
    // k0 was forgotten: a full bucket again. k6 kept its empty one.
    expect(b.take("k0", 0).remaining).toBe(59);
    expect(b.take("k6", 0).allowed).toBe(false);
  });

  test("under a stream of new keys, none used within the last 0.4 × maxKeys placements is forgotten", () => {
    const b = new TokenBuckets(1000, 100);
    const used = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      // Ten keys used every 20 takes, between keys never seen before: every other take places a bucket.
      const key = i % 2 === 0 ? `hot${(i / 2) % 10}` : `cold${i}`;
      const decision = b.take(key, 0);
      const before = used.get(key);
      // Every take spends a token and none refill (the clock stands still): a bucket kept has fewer left.
      if (before !== undefined) expect(decision.remaining).toBeLessThan(999);
      used.set(key, i);
    }
    expect(b.size).toBeLessThanOrEqual(100);
  });

  test("never holds more than maxKeys buckets, even when none is full", () => {
    const b = new TokenBuckets(60, 3);
    for (const key of ["a", "b", "c", "d", "e", "f", "g"]) {
      drain(b, key, 60, 0);
      expect(size(b)).toBeLessThanOrEqual(3);
    }
  });

  test("below maxKeys nothing is forgotten, full or not", () => {
    const b = new TokenBuckets(60, 10);
    for (const key of ["a", "b", "c"]) b.take(key, 0);
    b.take("d", 3_600_000);
    expect(size(b)).toBe(4);
  });
});
