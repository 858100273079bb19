import { describe, expect, test } from "bun:test";
import { readWithinDeadline } from "../../src/http/body-deadline.ts";
import { AppError } from "../../src/http/errors.ts";

const never = () => new Promise<string>(() => {});

function deadline(timeoutMs: number, closing = new AbortController().signal) {
  let abandoned = 0;
  return { options: { timeoutMs, closing, abandon: () => abandoned++ }, abandoned: () => abandoned };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (err: unknown) => err,
  );
}

describe("readWithinDeadline", () => {
  test("a body that arrives in time is returned as read, and the connection is kept", async () => {
    const d = deadline(1000);
    expect(await readWithinDeadline(Promise.resolve("{}"), d.options)).toBe("{}");
    expect(d.abandoned()).toBe(0);
  });

  test("a read that fails (413, 400) fails with its own error, not a timeout", async () => {
    const d = deadline(1000);
    const tooLarge = new AppError("payload_too_large", "too large");
    expect(await rejection(readWithinDeadline(Promise.reject(tooLarge), d.options))).toBe(tooLarge);
    expect(d.abandoned()).toBe(0);
  });

  test("a body still arriving at the deadline is a 408 request_timeout that asks to close the connection", async () => {
    const d = deadline(30);
    const err = await rejection(readWithinDeadline(never(), d.options));
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe("request_timeout");
    expect((err as AppError).status).toBe(408);
    expect((err as AppError).options.headers).toEqual({ connection: "close" });
    expect(d.abandoned()).toBe(1);
  });

  test("when shutdown stops waiting, a body still arriving is a 503 with Retry-After, long before the body deadline", async () => {
    const closing = new AbortController();
    const d = deadline(60_000, closing.signal);
    const read = rejection(readWithinDeadline(never(), d.options));
    closing.abort();
    const err = (await read) as AppError;
    expect(err.code).toBe("service_unavailable");
    expect(err.options.headers).toEqual({ connection: "close", "retry-after": "1" });
    expect(d.abandoned()).toBe(1);
  });

  test("a read that starts after shutdown stopped waiting is refused at once", async () => {
    const closing = new AbortController();
    closing.abort();
    const d = deadline(60_000, closing.signal);
    expect(((await rejection(readWithinDeadline(never(), d.options))) as AppError).code).toBe("service_unavailable");
  });

  // One timer and one shutdown listener serve every body being read (body-deadline.ts): each read still gets its
  // own deadline, a read that finished is never given up, and shutdown gives up every read still waiting.
  test("reads under one shutdown signal each time out at their own deadline, a shorter one started later first", async () => {
    const closing = new AbortController().signal;
    const slow = deadline(400, closing);
    const fast = deadline(20, closing);
    const started = performance.now();
    const slowRead = rejection(readWithinDeadline(never(), slow.options)).then(() => performance.now() - started);
    const fastRead = rejection(readWithinDeadline(never(), fast.options)).then(() => performance.now() - started);
    const [fastAt, slowAt] = await Promise.all([fastRead, slowRead]);
    expect(fastAt).toBeLessThan(slowAt);
    expect(slowAt).toBeGreaterThanOrEqual(399);
    expect([fast.abandoned(), slow.abandoned()]).toEqual([1, 1]);
  });

  test("a read that arrived in time is not given up when its deadline passes", async () => {
    const closing = new AbortController().signal;
    const done = deadline(20, closing);
    const late = deadline(40, closing);
    expect(await readWithinDeadline(Promise.resolve("{}"), done.options)).toBe("{}");
    expect(((await rejection(readWithinDeadline(never(), late.options))) as AppError).code).toBe("request_timeout");
    expect([done.abandoned(), late.abandoned()]).toEqual([0, 1]);
  });

  test("shutdown gives up every read still waiting, and none that finished", async () => {
    const closing = new AbortController();
    const waiting = [deadline(60_000, closing.signal), deadline(60_000, closing.signal)];
    const finished = deadline(60_000, closing.signal);
    const reads = waiting.map((d) => rejection(readWithinDeadline(never(), d.options)));
    await readWithinDeadline(Promise.resolve("{}"), finished.options);
    closing.abort();
    expect(((await Promise.all(reads)) as AppError[]).map((e) => e.code)).toEqual(["service_unavailable", "service_unavailable"]);
    expect([...waiting.map((d) => d.abandoned()), finished.abandoned()]).toEqual([1, 1, 0]);
  });
});
