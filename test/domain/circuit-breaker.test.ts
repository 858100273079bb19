import { describe, expect, test } from "bun:test";
import { admit, type Breaker, type BreakerResult, type BreakerState, closedBreaker, record } from "../../src/domain/circuit-breaker.ts";

const OPTIONS = { failureThreshold: 3, openMs: 30_000 };
const T0 = 1_000_000;

const breaker = (state: BreakerState, extra: Partial<Breaker> = {}): Breaker => ({ ...closedBreaker, state, ...extra });

describe("admit", () => {
  test.each([
    // state, openedAt, pausedUntil, now → allowed, refusal, next state, transition
    ["closed", 0, 0, T0, true, undefined, "closed", undefined],
    ["open", T0, 0, T0 + 29_999, false, "open", "open", undefined],
    ["open", T0, 0, T0 + 30_000, true, undefined, "half_open", "half_open"],
    ["half_open", T0, 0, T0 + 60_000, false, "probing", "half_open", undefined],
    ["closed", 0, T0 + 500, T0, false, "paused", "closed", undefined],
    ["open", T0, T0 + 40_000, T0 + 30_000, false, "paused", "open", undefined],
    ["closed", 0, T0, T0, true, undefined, "closed", undefined],
  ] as const)("%s (opened %d, paused until %d) at %d: allowed=%p", (state, openedAt, pausedUntil, now, allowed, refusal, nextState, transition) => {
    const a = admit(breaker(state, { openedAt, pausedUntil }), now, OPTIONS);
    expect(a.allowed).toBe(allowed);
    expect(a.refusal).toBe(refusal);
    expect(a.next.state).toBe(nextState);
    expect(a.transition).toBe(transition);
  });

  test("a refusal says when to ask again: the end of the cool-down, or of the pause", () => {
    expect(admit(breaker("open", { openedAt: T0 }), T0 + 1, OPTIONS).retryAt).toBe(T0 + 30_000);
    expect(admit(breaker("closed", { pausedUntil: T0 + 700 }), T0, OPTIONS).retryAt).toBe(T0 + 700);
  });

  test("after the cool-down exactly one of many concurrent callers gets the probe", () => {
    let b = breaker("open", { openedAt: T0 });
    let allowed = 0;
    for (let i = 0; i < 50; i++) {
      const a = admit(b, T0 + 30_000 + i, OPTIONS);
      b = a.next;
      if (a.allowed) allowed++;
    }
    expect(allowed).toBe(1);
    expect(b.state).toBe("half_open");
  });
});

describe("record", () => {
  const cases: [BreakerState, number, BreakerResult, BreakerState, number, BreakerState | undefined][] = [
    // state, failures before, result → state, failures after, transition
    ["closed", 0, "success", "closed", 0, undefined],
    ["closed", 2, "success", "closed", 0, undefined],
    ["closed", 0, "failure", "closed", 1, undefined],
    ["closed", 1, "failure", "closed", 2, undefined],
    ["closed", 2, "failure", "open", 3, "open"],
    ["closed", 2, "rate_limited", "closed", 0, undefined],
    ["half_open", 3, "success", "closed", 0, "closed"],
    ["half_open", 3, "failure", "open", 3, "open"],
    ["half_open", 3, "rate_limited", "closed", 0, "closed"],
    ["open", 3, "success", "closed", 0, "closed"],
    ["open", 3, "failure", "open", 3, undefined],
    ["open", 3, "rate_limited", "closed", 0, "closed"],
  ];
  test.each(cases)("%s with %d failures, then %s → %s with %d failures", (state, failures, result, nextState, nextFailures, transition) => {
    const r = record(breaker(state, { failures, openedAt: T0 - 10 }), result, T0, OPTIONS, 2000);
    expect(r.next.state).toBe(nextState);
    expect(r.next.failures).toBe(nextFailures);
    expect(r.transition).toBe(transition);
  });

  test("opening starts the cool-down now; a late failure while open does not stretch it", () => {
    const opened = record(breaker("closed", { failures: 2 }), "failure", T0, OPTIONS).next;
    expect(opened.openedAt).toBe(T0);
    expect(record(opened, "failure", T0 + 5_000, OPTIONS).next.openedAt).toBe(T0);
    const reopened = record(breaker("half_open", { openedAt: T0 }), "failure", T0 + 31_000, OPTIONS).next;
    expect(reopened.openedAt).toBe(T0 + 31_000);
  });

  test.each([
    [2000, T0 + 2000],
    [undefined, T0 + 1000],
    [0, T0 + 1000],
    [-5, T0 + 1000],
    [Number.NaN, T0 + 1000],
  ])("a rate limit with Retry-After %p ms pauses the provider until %d", (retryAfterMs, until) => {
    const paused = record(closedBreaker, "rate_limited", T0, OPTIONS, retryAfterMs).next;
    expect(paused.pausedUntil).toBe(until);
    expect(admit(paused, until - 1, OPTIONS).allowed).toBe(false);
    expect(admit(paused, until, OPTIONS).allowed).toBe(true);
  });

  test("a shorter Retry-After never shortens a pause already in force", () => {
    const first = record(closedBreaker, "rate_limited", T0, OPTIONS, 10_000).next;
    expect(record(first, "rate_limited", T0 + 1, OPTIONS, 100).next.pausedUntil).toBe(T0 + 10_000);
  });
});

describe("a provider that keeps failing, then recovers", () => {
  test("is called at most threshold + 1 times per open period: the failures that open it, then one probe", () => {
    let b = closedBreaker;
    let calls = 0;
    const period = (start: number, healthy: boolean) => {
      for (let now = start; now < start + OPTIONS.openMs; now += 100) {
        const a = admit(b, now, OPTIONS);
        b = a.next;
        if (!a.allowed) continue;
        calls++;
        b = record(b, healthy ? "success" : "failure", now, OPTIONS).next;
      }
    };
    period(T0, false);
    expect(calls).toBe(OPTIONS.failureThreshold);
    expect(b.state).toBe("open");
    period(T0 + OPTIONS.openMs, false);
    expect(calls).toBe(OPTIONS.failureThreshold + 1);
    period(T0 + 2 * OPTIONS.openMs, true);
    expect(b.state).toBe("closed");
  });
});
