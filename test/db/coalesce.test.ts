import { describe, expect, test } from "bun:test";
import { coalesceSameTurn } from "../../src/db/coalesce.ts";

/** A loader that records its calls and answers when told to. */
function recordingLoader() {
  const calls: string[] = [];
  const load = async (key: string) => {
    calls.push(key);
    return { key, call: calls.length };
  };
  return { calls, load };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("coalesceSameTurn", () => {
  test("identical calls in one turn share one load and all get its result", async () => {
    const { calls, load } = recordingLoader();
    const get = coalesceSameTurn(load, (k) => k);
    const results = await Promise.all([get("a"), get("a"), get("a")]);
    expect(calls).toEqual(["a"]);
    expect(results.every((r) => r === results[0])).toBe(true);
  });

  test("different keys in one turn each get their own load", async () => {
    const { calls, load } = recordingLoader();
    const get = coalesceSameTurn(load, (k) => k);
    const [a, b] = await Promise.all([get("a"), get("b")]);
    expect(calls.sort()).toEqual(["a", "b"]);
    expect(a.key).toBe("a");
    expect(b.key).toBe("b");
  });

  test("a call made after the load was sent never joins it, so it cannot read older data than it asked for", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const calls: number[] = [];
    const get = coalesceSameTurn(async (_k: string) => {
      calls.push(calls.length + 1);
      const n = calls.length;
      await gate;
      return n;
    }, (k) => k);
    const first = get("a");
    await nextTurn(); // the first load is now under way
    const second = get("a");
    release();
    expect(await first).toBe(1);
    expect(await second).toBe(2);
    expect(calls).toEqual([1, 2]);
  });

  test("a failed load rejects every caller that shared it", async () => {
    const get = coalesceSameTurn(async (_k: string) => Promise.reject(new Error("db down")), (k) => k);
    const results = await Promise.allSettled([get("a"), get("a")]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect((results[0] as PromiseRejectedResult).reason.message).toBe("db down");
  });
});
