import { afterAll, describe, expect, test } from "bun:test";
import { loopbackGuard, refusal, text } from "./egress-fixtures.ts";

/** A hostile or broken server cannot make a guarded request read without end or wait without end. */

let chunksServed = 0;
const CHUNK = new Uint8Array(16 * 1024).fill(120);

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/exactly-1k") return new Response(new Uint8Array(1024).fill(97));
    if (path === "/declared-2k") return new Response(new Uint8Array(2048).fill(97));
    if (path === "/endless") {
      // No Content-Length: the body never ends, so the only way out is to stop reading it.
      return new Response(
        new ReadableStream({
          async pull(controller) {
            chunksServed++;
            await Bun.sleep(1);
            controller.enqueue(CHUNK);
          },
        }),
      );
    }
    if (path === "/silent") return new Promise<Response>(() => {});
    if (path === "/stalls-after-head") {
      return new Response(new ReadableStream({ start: (controller) => controller.enqueue(CHUNK) }));
    }
    return new Response("ok");
  },
});
const BASE = `http://127.0.0.1:${server.port}`;

// A port nothing listens on: bound once to learn a free port, then closed.
const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
const CLOSED_PORT = closed.port!;
closed.stop(true);

afterAll(() => server.stop(true));

describe("response size cap", () => {
  test("a body of exactly maxResponseBytes is read whole", async () => {
    const response = await loopbackGuard(server.port!, { maxResponseBytes: 1024 }).request(`${BASE}/exactly-1k`);
    expect(response.body.byteLength).toBe(1024);
  });

  test("a body that declares more than the cap is refused before it is read", async () => {
    const error = await refusal(loopbackGuard(server.port!, { maxResponseBytes: 1024 }).request(`${BASE}/declared-2k`));
    expect(error.reason).toBe("response_too_large");
    expect(error.message).toContain("declares 2048");
  });

  test("an endless body without a length is refused once past the cap, and reading stops", async () => {
    const egress = loopbackGuard(server.port!, { maxResponseBytes: 100 * 1024, timeoutMs: 10_000 });
    const error = await refusal(egress.request(`${BASE}/endless`));
    expect(error.reason).toBe("response_too_large");
    const servedAtRefusal = chunksServed;
    await Bun.sleep(200);
    // The server may have queued a chunk or two ahead, but nothing is draining it any more.
    expect(chunksServed - servedAtRefusal).toBeLessThan(5);
  });
});

describe("timeouts", () => {
  test("a server that accepts and never answers → timeout, within the connect timeout", async () => {
    const started = performance.now();
    const error = await refusal(loopbackGuard(server.port!, { connectTimeoutMs: 300, timeoutMs: 10_000 }).request(`${BASE}/silent`));
    const elapsed = performance.now() - started;
    expect(error.reason).toBe("timeout");
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2_000);
  });

  test("the total timeout bounds a body that stops arriving after the head", async () => {
    const started = performance.now();
    const egress = loopbackGuard(server.port!, { connectTimeoutMs: 5_000, timeoutMs: 400 });
    const error = await refusal(egress.request(`${BASE}/stalls-after-head`));
    const elapsed = performance.now() - started;
    expect(error.reason).toBe("timeout");
    expect(elapsed).toBeGreaterThanOrEqual(350);
    expect(elapsed).toBeLessThan(2_500);
  });

  test("the connect timeout does not cut a body that is still arriving once the head is in", async () => {
    const response = await loopbackGuard(server.port!, { connectTimeoutMs: 50 }).request(`${BASE}/exactly-1k`);
    await Bun.sleep(100);
    expect(text(response.body)).toHaveLength(1024);
  });
});

describe("connection failures are typed too", () => {
  test("a closed port → connection_failed, with the cause kept", async () => {
    const error = await refusal(loopbackGuard(CLOSED_PORT).request(`http://127.0.0.1:${CLOSED_PORT}/`));
    expect(error.reason).toBe("connection_failed");
    expect(error.cause).toBeDefined();
  });
});
