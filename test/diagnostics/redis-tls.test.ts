// The shared limits' Redis over TLS (`rediss://`), against a redis-server of the test's own that speaks only TLS
// with a certificate from a throw-away CA: `serve` shares its limits through it once the machine trusts that CA
// (NODE_EXTRA_CA_CERTS), and `check` says what is wrong when it does not, or when the scheme and the server differ.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { redisCheck } from "../../src/diagnostics/redis-check.ts";
import { testConfig } from "../helpers/app.ts";
import { ensureBinary, killAll, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { hasRedisServer, startTlsRedis, TEST_REDIS_URL, type TlsRedis } from "../helpers/redis.ts";

const dir = mkdtempSync(join(tmpdir(), "msg-test-redis-tls-"));
const running: ServeProcess[] = [];
let redis: TlsRedis;
/** What the TLS server needs of the machine (.ci/run installs redis-server; openssl is Debian's base). */
const tools = hasRedisServer() && Bun.which("openssl") !== null;

beforeAll(async () => {
  await ensureBinary();
  if (!tools) return;
  const started = await startTlsRedis(dir);
  if (typeof started === "string") throw new Error(`no TLS Redis for the tests: ${started}`);
  redis = started;
}, 180_000);

afterAll(async () => {
  killAll(running);
  if (tools) await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The `redis` line of `messaging check` run with `env`. */
async function checkLine(env: Record<string, string>): Promise<string> {
  const r = await runBinary(["check"], { cwd: dir, env });
  return r.stdout.split("\n").find((line) => line.includes(" redis: ")) ?? `no redis line in:\n${r.stdout}\n${r.stderr}`;
}

describe.skipIf(!tools)("Redis over TLS (rediss://)", () => {
  test("with its CA trusted (NODE_EXTRA_CA_CERTS), check connects, runs the limits' script and reads the version", async () => {
    const line = await checkLine({ MESSAGING_REDIS_URL: redis.url, NODE_EXTRA_CA_CERTS: redis.caFile });
    expect(line).toStartWith("✓ redis:");
    expect(line).toContain(`Redis at 127.0.0.1:${redis.port} (version `);
  });

  test("serve shares its rate limits through it: /readyz 200 with Redis required, and the limit's counters are in that Redis", async () => {
    const s = await startServe({
      cwd: mkdtempSync(join(dir, "serve-")),
      env: { MESSAGING_REDIS_URL: redis.url, MESSAGING_REDIS_REQUIRED: "true", NODE_EXTRA_CA_CERTS: redis.caFile, API_RATE_LIMIT_PER_IP_PER_MIN: "3" },
    });
    running.push(s);
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await fetch(`${s.url}/api/conversations`)).status);
    // The fourth request of the minute is over the per-IP limit of 3, counted in Redis.
    expect(statuses).toEqual([200, 200, 200, 429]);
    const keys = Bun.spawnSync([...redis.cli, "--scan"]).stdout.toString().trim().split("\n").filter(Boolean);
    expect(keys.length).toBeGreaterThan(0);
    expect(await s.stop()).toBe(0);
  }, 60_000);

  test("without its CA, check says the certificate is not trusted and how to trust it", async () => {
    const [result] = await redisCheck(testConfig({ redisUrl: redis.url }));
    expect(result!.status).toBe("warn");
    expect(result!.message).toContain("its TLS certificate is not trusted here (");
    expect(result!.message).toContain("NODE_EXTRA_CA_CERTS");
  });

  test("redis:// to a server that only speaks TLS: check says to use rediss://", async () => {
    const [result] = await redisCheck(testConfig({ redisUrl: `redis://127.0.0.1:${redis.port}` }));
    expect(result!.status).toBe("warn");
    expect(result!.message).toContain("use rediss://");
  });

  test("rediss:// to a server without TLS: check says it does not answer TLS, within its bounds", async () => {
    const plain = new URL(TEST_REDIS_URL);
    const startedAt = Date.now();
    const [result] = await redisCheck(testConfig({ redisUrl: `rediss://${plain.host}` }), 1000);
    expect(result!.status).toBe("warn");
    expect(result!.message).toContain("it does not answer TLS");
    expect(result!.message).toContain("takes redis://, not rediss://");
    // The driver's wait, then the handshake's: each bounded by the timeout.
    expect(Date.now() - startedAt).toBeLessThan(5000);
  });
});
