import { describe, expect, test } from "bun:test";
import { DeliveryWake, NOTIFY_INTERVAL_MS } from "../../src/delivery/wake.ts";

describe("DeliveryWake", () => {
  test("a burst of commits wakes the local dispatcher each time but NOTIFYs other instances a few times at most", async () => {
    let notified = 0;
    let local = 0;
    const wake = new DeliveryWake(async () => {
      notified += 1;
    });
    wake.attach(() => {
      local += 1;
    });
    const started = Date.now();
    while (Date.now() - started < 200) {
      wake.committed();
      await Bun.sleep(1);
    }
    const elapsed = Date.now() - started;
    await Bun.sleep(NOTIFY_INTERVAL_MS * 2);
    expect(local).toBeGreaterThan(50);
    // One at once, then at most one per interval, and the last commit is never left without one.
    expect(notified).toBeGreaterThanOrEqual(2);
    expect(notified).toBeLessThanOrEqual(Math.ceil(elapsed / NOTIFY_INTERVAL_MS) + 2);
  });

  test("a lone commit is notified at once, not after the interval", async () => {
    let at = 0;
    const wake = new DeliveryWake(async () => {
      at = Date.now();
    });
    const started = Date.now();
    wake.committed();
    await Bun.sleep(NOTIFY_INTERVAL_MS / 2);
    expect(at).toBeGreaterThan(0);
    expect(at - started).toBeLessThan(NOTIFY_INTERVAL_MS / 2);
  });

  test("a failed NOTIFY does not stop later ones", async () => {
    let calls = 0;
    const wake = new DeliveryWake(async () => {
      calls += 1;
      if (calls === 1) throw new Error("connection lost");
    });
    wake.committed();
    await Bun.sleep(5);
    wake.committed();
    await Bun.sleep(NOTIFY_INTERVAL_MS * 2);
    expect(calls).toBe(2);
  });
});
