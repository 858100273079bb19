import { describe, expect, test } from "bun:test";
import { retryDelayMs } from "../../src/domain/backoff";

const fixed = (value: number) => () => value;
const ALMOST_ONE = 1 - Number.EPSILON;

describe("retryDelayMs", () => {
  test.each<[string, number, number, number, number, number]>([
    // name, attempt, baseMs, capMs, random, expected
    ["the first attempt waits up to baseMs", 1, 1000, 60_000, ALMOST_ONE, 999],
    ["the ceiling doubles on the second attempt", 2, 1000, 60_000, 0.5, 1000],
    ["the ceiling doubles again on the third attempt", 3, 1000, 60_000, 0.5, 2000],
    ["the ceiling is 2^(attempt-1) × base", 6, 1000, 60_000, 0.5, 16_000],
    ["full jitter can wait no time at all", 4, 1000, 60_000, 0, 0],
    ["the cap bounds the ceiling", 10, 1000, 60_000, 0.5, 30_000],
    ["the cap bounds the delay at the top of the jitter", 10, 1000, 60_000, ALMOST_ONE, 59_999],
    ["a huge attempt stays at the cap, not Infinity", 5000, 1000, 60_000, 0.5, 30_000],
    ["a zero base never waits, even for huge attempts", 5000, 0, 60_000, 0.5, 0],
    ["a zero cap never waits", 3, 1000, 0, 0.9, 0],
    ["whole milliseconds, rounded down", 1, 10, 1000, 0.33, 3],
  ])("%s", (_name, attempt, baseMs, capMs, random, expected) => {
    expect(retryDelayMs(attempt, { baseMs, capMs, random: fixed(random) })).toBe(expected);
  });

  test.each<[string, number, number, number | null | undefined, number]>([
    // name, attempt, random, retryAfterMs, expected (base 1000, cap 60 000)
    ["Retry-After raises a shorter jittered delay", 1, 0.1, 5000, 5000],
    ["a jittered delay longer than Retry-After is kept", 6, 0.5, 5000, 16_000],
    ["Retry-After beyond the cap wins over the cap", 10, ALMOST_ONE, 120_000, 120_000],
    ["a fractional Retry-After is rounded up so it is never undershot", 1, 0, 1500.2, 1501],
    ["a null Retry-After is ignored", 1, 0.5, null, 500],
    ["an absent Retry-After is ignored", 1, 0.5, undefined, 500],
    ["a zero Retry-After is ignored", 1, 0.5, 0, 500],
    ["a negative Retry-After is ignored", 1, 0.5, -5000, 500],
    ["a NaN Retry-After is ignored", 1, 0.5, Number.NaN, 500],
    ["an infinite Retry-After is ignored", 1, 0.5, Number.POSITIVE_INFINITY, 500],
  ])("%s", (_name, attempt, random, retryAfterMs, expected) => {
    expect(retryDelayMs(attempt, { baseMs: 1000, capMs: 60_000, random: fixed(random), retryAfterMs })).toBe(expected);
  });

  test("a random() outside [0, 1] is clamped instead of exceeding the cap", () => {
    expect(retryDelayMs(10, { baseMs: 1000, capMs: 60_000, random: fixed(7) })).toBe(60_000);
    expect(retryDelayMs(10, { baseMs: 1000, capMs: 60_000, random: fixed(-1) })).toBe(0);
  });

  test.each([1, 2, 5, 20, 100])("with real randomness attempt %p stays within [0, min(cap, base·2^(n-1))]", (attempt) => {
    const ceiling = Math.min(30_000, 250 * 2 ** (attempt - 1));
    for (let i = 0; i < 1000; i++) {
      const delay = retryDelayMs(attempt, { baseMs: 250, capMs: 30_000, random: Math.random });
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(ceiling);
      expect(Number.isInteger(delay)).toBe(true);
    }
  });

  test.each([0, -1, 1.5, Number.NaN])("rejects attempt %p, since attempts are 1-based", (attempt) => {
    expect(() => retryDelayMs(attempt, { baseMs: 1000, capMs: 60_000, random: Math.random })).toThrow(RangeError);
  });

  test.each<[number, number]>([
    [-1, 1000],
    [1000, -1],
    [Number.NaN, 1000],
    [1000, Number.POSITIVE_INFINITY],
  ])("rejects baseMs %p / capMs %p", (baseMs, capMs) => {
    expect(() => retryDelayMs(1, { baseMs, capMs, random: Math.random })).toThrow(RangeError);
  });
});
