import { describe, expect, test } from "bun:test";
import { createServer } from "node:net";
import { redisCheck } from "../../src/diagnostics/redis-check.ts";
import { runChecks } from "../../src/diagnostics/check.ts";
import { testConfig } from "../helpers/app.ts";
import { freePort } from "../helpers/ports.ts";
import { TEST_REDIS_URL } from "../helpers/redis.ts";

/** A loopback server that accepts connections and never answers. */
async function silentServer(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<import("node:net").Socket>();
  const server = createServer((socket) => sockets.add(socket));
  const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)));
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe("check: the shared limits' Redis", () => {
  test("none configured is fine: each instance counts alone, and nothing is dialled", async () => {
    const [result] = await redisCheck(testConfig({}));
    expect(result).toEqual({ check: "redis", status: "ok", message: expect.stringContaining("each instance applies the rate limits on its own") });
  });

  test("a Redis that answers: ok, with where it is and its version, after running a script that reads its clock", async () => {
    const [result] = await redisCheck(testConfig({ redisUrl: TEST_REDIS_URL }));
    const { hostname, port } = new URL(TEST_REDIS_URL);
    expect(result!.status).toBe("ok");
    expect(result!.message).toContain(`Redis at ${hostname}:${port || "6379"} (version `);
    expect(result!.message).toContain("rate limits are shared by every instance");
  });

  test("one that refuses the connection: a warning (serve starts on in-process limits) that never shows the URL's password", async () => {
    const port = await freePort();
    const [result] = await redisCheck(testConfig({ redisUrl: `redis://:s3cret-pw@127.0.0.1:${port}` }));
    expect(result!.status).toBe("warn");
    expect(result!.message).toContain(`cannot use Redis at 127.0.0.1:${port}: nothing accepts connections there (ECONNREFUSED)`);
    expect(result!.message).toContain("serve starts anyway");
    expect(result!.message).not.toContain("s3cret-pw");
  });

  test("with MESSAGING_REDIS_REQUIRED the same is an error: /readyz would answer 503", async () => {
    const port = await freePort();
    const [result] = await redisCheck(testConfig({ redisUrl: `redis://127.0.0.1:${port}`, redisRequired: true }));
    expect(result!.status).toBe("error");
    expect(result!.message).toContain("/readyz answers 503");
  });

  test("one that accepts and never answers is given up on within the timeout, not waited for", async () => {
    const server = await silentServer();
    try {
      const started = performance.now();
      const [result] = await redisCheck(testConfig({ redisUrl: `redis://127.0.0.1:${server.port}` }), 300);
      expect(result!.status).toBe("warn");
      expect(result!.message).toContain("no answer within 300 ms");
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      server.close();
    }
  });

  test("a password the server does not take: a warning with the server's reason, the password not repeated", async () => {
    const { hostname, port } = new URL(TEST_REDIS_URL);
    const [result] = await redisCheck(testConfig({ redisUrl: `redis://nobody:wr0ng-pw@${hostname}:${port || "6379"}` }));
    expect(result!.status).toBe("warn");
    expect(result!.message).toContain("it accepts connections but closed this one: a wrong user or password");
    expect(result!.message).not.toContain("wr0ng-pw");
  });

  test("runChecks reports it after the configuration items, before the database", async () => {
    const results = await runChecks(testConfig({ redisUrl: TEST_REDIS_URL, dataDir: "/nonexistent/msg-check-redis" }), { settingsChecks: [] });
    expect(results.map((r) => r.check)).toEqual(["config", "redis", "database"]);
  });
});
