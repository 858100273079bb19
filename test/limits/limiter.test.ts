import { describe, expect, test } from "bun:test";
import { LocalLimiter, perMinute } from "../../src/limits/limiter.ts";

describe("LocalLimiter", () => {
  test("takes through one shape object share the name's bucket", () => {
    const limiter = new LocalLimiter(() => 0);
    const shape = perMinute(2);
    expect([1, 2, 3].map(() => limiter.takeNow("sender:a", shape).allowed)).toEqual([true, true, false]);
    expect(limiter.takeNow("sender:b", shape).allowed).toBe(true);
  });

  test("equal shapes made apart are one table: a fresh object of the same figures finds the bucket spent", () => {
    const limiter = new LocalLimiter(() => 0);
    limiter.takeNow("sender:a", perMinute(2));
    limiter.takeNow("sender:a", perMinute(2));
    expect(limiter.takeNow("sender:a", perMinute(2)).allowed).toBe(false);
  });

  test("another shape is another table, even for the same name", () => {
    const limiter = new LocalLimiter(() => 0);
    const small = perMinute(1);
    limiter.takeNow("k", small);
    expect(limiter.takeNow("k", small).allowed).toBe(false);
    expect(limiter.takeNow("k", perMinute(5)).allowed).toBe(true);
    expect(limiter.takeNow("k", small).allowed).toBe(false);
  });
});
