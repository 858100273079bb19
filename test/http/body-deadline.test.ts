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
});
