// The selftest's fresh data (cli/selftest/run-data.ts): nothing repeats within a run, whatever kinds are drawn in
// whatever order, and two runs never share a phone number or an id.
import { describe, expect, test } from "bun:test";
import { PHONES_PER_RUN, RunData } from "../../cli/selftest/run-data.ts";

/** A deterministic stand-in for Math.random, so two "runs" differ only by their seed. */
function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

describe("within one run", () => {
  test("every phone number is new, E.164 with 15 digits in the +1 555 range, for the run's whole allowance", () => {
    const data = new RunData();
    // Other kinds drawn in between must not move the phone numbers onto each other (the older counter was shared).
    const phones = Array.from({ length: PHONES_PER_RUN }, (_, i) => {
      if (i % 3 === 0) data.email();
      if (i % 5 === 0) data.idempotencyKey();
      return data.phone();
    });
    expect(new Set(phones).size).toBe(PHONES_PER_RUN);
    for (const p of phones) expect(p).toMatch(/^\+1555\d{11}$/);
  });

  test("past its allowance a run stops with an error rather than reuse a number", () => {
    const data = new RunData();
    for (let i = 0; i < PHONES_PER_RUN; i++) data.phone();
    expect(() => data.phone()).toThrow(`at most ${PHONES_PER_RUN} phone numbers`);
  });

  test("emails, provider ids and idempotency keys never repeat, past any fixed width", () => {
    const data = new RunData();
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      for (const v of [data.email(), data.providerId(), data.idempotencyKey()]) {
        expect(seen.has(v)).toBe(false);
        seen.add(v);
      }
    }
  });
});

describe("across runs", () => {
  test("two runs share no phone number, email, provider id or idempotency key", () => {
    const draw = (data: RunData) => new Set([...Array.from({ length: 2000 }, () => data.phone()), ...Array.from({ length: 500 }, () => [data.email(), data.providerId(), data.idempotencyKey()]).flat()]);
    const a = draw(new RunData(seeded(1)));
    const b = draw(new RunData(seeded(2)));
    expect([...a].filter((v) => b.has(v))).toEqual([]);
  });
});
