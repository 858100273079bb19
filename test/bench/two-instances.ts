/**
 * A key of 100/min over a whole minute, two `serve` processes on one PostgreSQL (issue 21): how many requests both
 * accept together in a 60 s window, with the limits in process (each instance counts alone) and shared through
 * Redis. The bound with Redis is 100 (the burst) + 100 (a minute's refill).
 *
 * Usage: bun test/bench/two-instances.ts [SECONDS=60]
 * Needs: dist/messaging (bun run build), PostgreSQL at TEST_DATABASE_URL's server, Redis at TEST_REDIS_URL.
 */
import { runBinary, startServe } from "../helpers/binary.ts";
import { createTestDatabase } from "../helpers/database.ts";
import { dropPrefix, TEST_REDIS_URL, testPrefix } from "../helpers/redis.ts";

const seconds = Number(process.argv[2] ?? 60);

async function window(extra: Record<string, string>): Promise<{ accepted: number; refused: number; other: number }> {
  const pg = await createTestDatabase();
  try {
    await runBinary(["migrate", "up"], { env: { DATABASE_URL: pg.url } });
    const made = await runBinary(["keys", "create", "--name", "bench", "--rate-limit", "100/min", "--json"], { env: { DATABASE_URL: pg.url } });
    const key = (JSON.parse(made.stdout) as { key: string }).key;
    const env = { DATABASE_URL: pg.url, MESSAGING_AUTH: "on", MESSAGING_DELIVERY_WORKERS: "0", ...extra };
    const [a, b] = await Promise.all([startServe({ env }), startServe({ env })]);
    let accepted = 0;
    let refused = 0;
    let other = 0;
    const end = performance.now() + seconds * 1000;
    // Four clients, 20 requests a second in all: far above the key's 100/min, so every token is taken as it comes.
    await Promise.all(
      Array.from({ length: 4 }, async (_, lane) => {
        for (let i = lane; performance.now() < end; i++) {
          const res = await fetch(`${(i % 2 ? a : b).url}/api/conversations`, { headers: { authorization: `Bearer ${key}` } });
          await res.arrayBuffer();
          if (res.status === 200) accepted += 1;
          else if (res.status === 429) refused += 1;
          else other += 1;
          await Bun.sleep(200);
        }
      }),
    );
    await Promise.all([a.stop(), b.stop()]);
    return { accepted, refused, other };
  } finally {
    await pg.drop();
  }
}

const alone = await window({});
const prefix = testPrefix("bench-two");
const shared = await window({ MESSAGING_REDIS_URL: TEST_REDIS_URL, MESSAGING_REDIS_PREFIX: prefix });
await dropPrefix(TEST_REDIS_URL, prefix);
console.log(`key of 100/min, two instances, ${seconds} s: in process ${alone.accepted} accepted (${alone.refused} refused, ${alone.other} other); through Redis ${shared.accepted} accepted (${shared.refused} refused, ${shared.other} other); bound with Redis ${100 + Math.round((100 * seconds) / 60)}`);
