// The selftest's runner: two lanes at once, the mock lane one case after another except its consecutive
// `sideBySide` cases (the scheduling ones, which only wait for send_at), which run at once; and the rate budget's
// wait bound counts every case running, as the runner tells it.
import { describe, expect, test } from "bun:test";
import type { Case } from "../../cli/selftest/case.ts";
import { schedulingCases } from "../../cli/selftest/cases/scheduling.ts";
import { Client, RateBudget } from "../../cli/selftest/client.ts";
import type { Target } from "../../cli/selftest/probe.ts";
import { RunData } from "../../cli/selftest/run-data.ts";
import { runCases } from "../../cli/selftest/runner.ts";

const target = { url: "http://127.0.0.1:9", features: new Map(), anonymousAnswer: undefined as never } satisfies Target;

interface Span {
  id: string;
  start: number;
  end: number;
  running: number;
}

/** A case that waits `ms` and records when it ran and how many cases the budget counted as running meanwhile. */
function waiting(id: string, ms: number, spans: Span[], budget: RateBudget, extra: Partial<Case> = {}): Case {
  return {
    id,
    title: id,
    tags: [id],
    spec: "",
    ...extra,
    async run() {
      const start = performance.now();
      await Bun.sleep(ms / 2);
      const running = budget.running;
      await Bun.sleep(ms / 2);
      spans.push({ id, start, end: performance.now(), running });
    },
  };
}

const overlap = (a: Span, b: Span) => a.start < b.end && b.start < a.end;

describe("runCases", () => {
  test("consecutive sideBySide cases of the mock lane run at once; the other mock cases one after another, apart from them", async () => {
    const budget = new RateBudget();
    const spans: Span[] = [];
    const mock = (id: string, sideBySide = false) => waiting(id, 300, spans, budget, { lane: "mock", ...(sideBySide ? { sideBySide } : {}) });
    const cases = [mock("s1", true), mock("s2", true), mock("m1"), mock("m2"), waiting("other", 300, spans, budget)];
    const { results, summary } = await runCases(cases, { http: new Client({ target: target.url }, budget), data: new RunData(), target, timeoutSecs: 10, reporters: [] });

    expect(summary).toMatchObject({ passed: 5, failed: 0, skipped: 0 });
    expect(results.map((r) => r.id)).toEqual(["s1", "s2", "m1", "m2", "other"]);
    const at = (id: string) => spans.find((s) => s.id === id)!;
    expect(overlap(at("s1"), at("s2"))).toBe(true);
    for (const side of ["s1", "s2"]) for (const alone of ["m1", "m2"]) expect(overlap(at(side), at(alone))).toBe(false);
    expect(overlap(at("m1"), at("m2"))).toBe(false);
    // The other lane runs beside the mock lane from the start.
    expect(overlap(at("other"), at("s1"))).toBe(true);
    // The budget counted the two side-by-side cases and the other lane's, then the lone mock case's alone.
    expect(at("s1").running).toBe(3);
    expect(at("m2").running).toBe(1);
    expect(budget.running).toBe(0);
  });

  test("the scheduling cases are the mock lane's side-by-side ones", () => {
    expect(schedulingCases.map((c) => [c.id, c.lane, c.sideBySide])).toEqual([
      ["scheduling.sent", "mock", true],
      ["scheduling.cancel", "mock", true],
    ]);
  });
});

describe("RateBudget.waitBoundMs counts the cases running", () => {
  const bucket = (limit: number, remaining: number) => ({
    status: 200,
    headers: new Headers({ "ratelimit-limit": String(limit), "ratelimit-remaining": String(remaining) }),
  });

  test("three cases running at 120 a minute from an empty bucket: 4 requests each and the reserve of 2 take 7 s", () => {
    const budget = new RateBudget();
    budget.observe(bucket(120, 0));
    const client = new Client({ target: target.url }, budget);
    const ended = [client.caseStarted(), client.caseStarted(), client.caseStarted()];
    expect(budget.waitBoundMs(4)).toBeGreaterThan(6900);
    expect(budget.waitBoundMs(4)).toBeLessThanOrEqual(7000);
    // One case alone waits only for its own four and the reserve; a case's end is counted once.
    ended[0]!();
    ended[0]!();
    ended[1]!();
    expect(budget.running).toBe(1);
    expect(budget.waitBoundMs(4)).toBeLessThanOrEqual(3000);
    expect(budget.waitBoundMs(4)).toBeGreaterThan(2900);
  });
});
