/**
 * The cost of the shared rate limits (issue 21), both ways in one run:
 *  1. the limiter alone: takes per second, in process vs one Lua script in Redis per take (one client, 32 in flight);
 *  2. sends through the compiled binary (auth on, one key, PostgreSQL): the same sends, as fast as 32 clients go,
 *     against an instance with in-process limits and against one with MESSAGING_REDIS_URL.
 *
 * Usage: bun test/bench/limits.ts [SECONDS_PER_SEND_RUN=10]
 * Needs: dist/messaging (bun run build), PostgreSQL at TEST_DATABASE_URL's server, Redis at TEST_REDIS_URL.
 */
import { perMinute } from "../../src/limits/limiter.ts";
import { LocalLimiter } from "../../src/limits/limiter.ts";
import { sharedLimits } from "../../src/limits/shared.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { runBinary, startServe } from "../helpers/binary.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { dropPrefix, TEST_REDIS_URL, testPrefix } from "../helpers/redis.ts";

const seconds = Number(process.argv[2] ?? 10);
const IN_FLIGHT = 32;

async function takesPerSecond(take: (i: number) => Promise<unknown>, ms: number): Promise<number> {
  let n = 0;
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < end) await take(n++);
    }),
  );
  return n / (ms / 1000);
}

const prefix = testPrefix("bench");
const metrics = createMetrics({ version: "bench" });
const shared = sharedLimits({ url: TEST_REDIS_URL, prefix, required: false, authFailureLimit: 10, authFailureWindowSecs: 300, logger: createLogger({ level: "silent" }), metrics });
await shared.start();
const local = new LocalLimiter();
const shape = perMinute(1_000_000_000);
const localRate = await takesPerSecond((i) => local.take(`key:${i % 100}`, shape), 2000);
const redisRate = await takesPerSecond((i) => shared.limiter.take(`key:${i % 100}`, shape), 2000);
shared.close();
await dropPrefix(TEST_REDIS_URL, prefix);
console.log(`limiter alone: in process ${Math.round(localRate)} takes/s; Redis ${Math.round(redisRate)} takes/s (${IN_FLIGHT} in flight, one connection)`);

async function sendRate(env: Record<string, string>): Promise<{ rate: number; ok: number; other: number }> {
  const pg = await createTestDatabase();
  try {
    await runBinary(["migrate", "up"], { env: { DATABASE_URL: pg.url } });
    const made = await runBinary(["keys", "create", "--name", "bench", "--json"], { env: { DATABASE_URL: pg.url } });
    const key = (JSON.parse(made.stdout) as { key: string }).key;
    const s = await startServe({
      env: { DATABASE_URL: pg.url, MESSAGING_AUTH: "on", API_RATE_LIMIT_PER_SENDER_PER_MIN: "10000000", MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN: "10000000", MESSAGING_DELIVERY_WORKERS: "0", ...env },
    });
    let i = 0;
    let ok = 0;
    let other = 0;
    const send = async () => {
      const n = i++;
      const res = await fetch(`${s.url}/api/messages/sms`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify({ from: `+1202555${String(n % 500).padStart(4, "0")}`, to: "+18045550001", type: "sms", body: `bench ${n}`, attachments: null, timestamp: "2024-11-01T14:00:00Z" }),
      });
      await res.arrayBuffer();
      if (res.status === 202) ok += 1;
      else other += 1;
    };
    await takesPerSecond(send, 1000); // warm-up
    ok = 0;
    other = 0;
    const rate = await takesPerSecond(send, seconds * 1000);
    await s.stop();
    return { rate, ok, other };
  } finally {
    await pg.drop();
  }
}

const sendPrefix = testPrefix("bench-send");
const inProcess = await sendRate({});
const withRedis = await sendRate({ MESSAGING_REDIS_URL: TEST_REDIS_URL, MESSAGING_REDIS_PREFIX: sendPrefix });
await dropPrefix(TEST_REDIS_URL, sendPrefix);
console.log(`sends, one instance, ${IN_FLIGHT} clients, ${seconds} s each: in-process limits ${Math.round(inProcess.rate)}/s (${inProcess.other} not 202); Redis limits ${Math.round(withRedis.rate)}/s (${withRedis.other} not 202)`);
