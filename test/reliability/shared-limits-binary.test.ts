/**
 * Two `serve` processes (the compiled binary) on one PostgreSQL and one Redis hold the limits together (issue 21):
 * a key's 100/min is 100/min across both, a provider at `max_per_second = 2` gets 2 calls a second in total
 * (measured at the fake Twilio), and when Redis stops mid-run both keep serving on in-process limits (no 5xx),
 * then share again once it answers. Parts 1 and 2 use the machine's Redis under a prefix of their own; part 3 a
 * private redis-server that it stops and restarts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateMasterKey } from "../../src/security/keyring.ts";
import { type DeliveryDatabase, deliveryDatabase, deliveryEnv, FAKE_TWILIO_SENDER, waitUntil, writeFakeTwilioConfig } from "../delivery/binary-fixture.ts";
import { ensureBinary, killAll, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { metricValue } from "../helpers/messaging.ts";
import { dropPrefix, type PrivateRedis, startPrivateRedis, TEST_REDIS_URL, testPrefix } from "../helpers/redis.ts";
import { FAKE_AUTH_TOKEN, type FakeTwilio, startFakeTwilio } from "../providers/twilio-fake.ts";

const dir = mkdtempSync(join(tmpdir(), "msg-test-shared-limits-"));
const MASTER_KEY = generateMasterKey("k1");
const prefix = testPrefix("two-instances");
const running: ServeProcess[] = [];
let db: DeliveryDatabase;
let fake: FakeTwilio;
let configFile: string;
let privateRedis: PrivateRedis | undefined;

const env = (extra: Record<string, string> = {}) =>
  deliveryEnv(db.url, {
    MESSAGING_MASTER_KEYS: MASTER_KEY,
    MESSAGING_AUTH: "on",
    MESSAGING_REDIS_URL: TEST_REDIS_URL,
    MESSAGING_REDIS_PREFIX: prefix,
    ...extra,
  });

async function createKey(rate?: string): Promise<string> {
  const made = await runBinary(["keys", "create", "--name", "two-instances", ...(rate ? ["--rate-limit", rate] : []), "--json"], { env: { DATABASE_URL: db.url } });
  expect(made.exitCode).toBe(0);
  return (JSON.parse(made.stdout) as { key: string }).key;
}

async function serve(extra: Record<string, string> = {}): Promise<ServeProcess> {
  const s = await startServe({ args: ["--config", configFile], env: env(extra) });
  running.push(s);
  return s;
}

beforeAll(async () => {
  [db, fake] = await Promise.all([deliveryDatabase(), startFakeTwilio(), ensureBinary()]).then(([d, f]) => [d, f] as const);
  configFile = writeFakeTwilioConfig(dir, fake.baseUrl);
  // The provider of the test: Twilio at 2 calls a second.
  writeFileSync(configFile, readFileSync(configFile, "utf8").replace('kind = "twilio"\n', 'kind = "twilio"\nmax_per_second = 2\n'));
  expect((await runBinary(["migrate", "up"], { env: { DATABASE_URL: db.url } })).exitCode).toBe(0);
  const set = await runBinary(["--config", configFile, "creds", "set", "twilio-test", "auth_token", "--value-file", "-"], {
    env: { DATABASE_URL: db.url, MESSAGING_MASTER_KEYS: MASTER_KEY },
    stdin: new TextEncoder().encode(`${FAKE_AUTH_TOKEN}\n`),
  });
  expect(set.exitCode).toBe(0);
}, 180_000);

afterAll(async () => {
  killAll(running);
  await privateRedis?.stop();
  await dropPrefix(TEST_REDIS_URL, prefix);
  await Promise.all([db?.close(), fake?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

const get = (url: string, key: string) => fetch(`${url}/api/conversations`, { headers: { authorization: `Bearer ${key}` } });

let sequence = 0;
function sendSms(url: string, key: string) {
  sequence += 1;
  const n = String(sequence).padStart(6, "0");
  return fetch(`${url}/api/messages/sms`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    // From the number the fake Twilio provider owns (any other sender is refused with 422 sender_not_allowed).
    body: JSON.stringify({ from: FAKE_TWILIO_SENDER, to: `+1303${n}2`, type: "sms", body: `paced ${n}`, attachments: null, timestamp: "2024-11-01T12:00:00Z" }),
  });
}

/** `total` requests, alternating between the instances, `concurrency` at a time; the statuses and the time taken. */
async function hammer(urls: string[], key: string, total: number, concurrency = 8): Promise<{ statuses: number[]; elapsedMs: number; limits: Set<string | null> }> {
  const statuses: number[] = [];
  const limits = new Set<string | null>();
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const res = await get(urls[i % urls.length]!, key);
        statuses.push(res.status);
        if (res.status === 429) limits.add(res.headers.get("ratelimit-limit"));
        await res.arrayBuffer();
      }
    }),
  );
  return { statuses, elapsedMs: performance.now() - t0, limits };
}

describe("two instances, one PostgreSQL, one Redis", () => {
  let a: ServeProcess;
  let b: ServeProcess;
  beforeAll(async () => {
    [a, b] = await Promise.all([serve(), serve()]);
  }, 60_000);

  test("a key of 100/min gets 100 (plus what the bucket refills meanwhile) across both instances, not 100 each", async () => {
    const key = await createKey("100/min");
    const { statuses, elapsedMs, limits } = await hammer([a.url, b.url], key, 300);
    const accepted = statuses.filter((s) => s === 200).length;
    const refill = Math.ceil((elapsedMs / 60_000) * 100);
    console.log(`[shared-limits] key 100/min, two instances: ${accepted} of 300 accepted in ${Math.round(elapsedMs)} ms (bound 100 + ${refill} refilled)`);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    expect(accepted).toBeGreaterThanOrEqual(100);
    expect(accepted).toBeLessThanOrEqual(100 + refill);
    expect([...limits]).toEqual(["100"]);
  }, 60_000);

  test("a provider at max_per_second = 2 receives at most 2 calls a second from both together, measured at the fake", async () => {
    const key = await createKey();
    fake.reset();
    const sends = await Promise.all(Array.from({ length: 12 }, (_, i) => sendSms(i % 2 ? a.url : b.url, key)));
    expect(sends.map((r) => r.status)).toEqual(Array(12).fill(202));
    const calls = () => fake.requests.filter((r) => r.method === "POST" && r.path.endsWith("/Messages.json"));
    await waitUntil("12 calls at the fake Twilio", async () => calls().length >= 12, 30_000);
    const times = calls().map((r) => r.at).sort((x, y) => x - y);
    // A token bucket of 2 refilling 2/s: any run of calls from the i-th to the j-th fits in 2 + 2 × its duration
    // (one call of slack for the time a request takes to arrive).
    let worst = 0;
    for (let i = 0; i < times.length; i++) {
      for (let j = i; j < times.length; j++) worst = Math.max(worst, j - i + 1 - (2 + (2 * (times[j]! - times[i]!)) / 1000));
    }
    const spanS = (times.at(-1)! - times[0]!) / 1000;
    const sustained = (times.length - 2) / spanS;
    console.log(`[shared-limits] max_per_second=2, two instances: 12 calls over ${spanS.toFixed(2)} s, ${sustained.toFixed(2)} calls/s after the burst of 2`);
    expect(worst).toBeLessThanOrEqual(1);
    expect(sustained).toBeLessThanOrEqual(2.2);
    expect(await db.count("messages WHERE status = 'sent'")).toBeGreaterThanOrEqual(12);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });
});

describe("Redis stops mid-run", () => {
  test("both instances keep serving on in-process limits (no 5xx), readyz says so only where Redis is required, and they share again once it answers", async () => {
    privateRedis = await startPrivateRedis();
    const own = { MESSAGING_REDIS_URL: privateRedis.url };
    const [a, b] = await Promise.all([serve({ ...own, MESSAGING_REDIS_REQUIRED: "true" }), serve(own)]);
    const key = await createKey("600/min");
    const statuses: { phase: string; status: number }[] = [];
    let phase = "shared";
    let stop = false;
    const load = Promise.all(
      Array.from({ length: 4 }, async (_, lane) => {
        for (let i = lane; !stop; i++) {
          const res = await get(i % 2 ? a.url : b.url, key);
          statuses.push({ phase, status: res.status });
          await res.arrayBuffer();
          await Bun.sleep(5);
        }
      }),
    );
    await Bun.sleep(500);
    phase = "outage";
    await privateRedis.stop();
    await waitUntil("both instances on in-process limits", async () => {
      const up = await Promise.all([a, b].map(async (s) => metricValue(await (await fetch(`${s.url}/metrics`)).text(), "messaging_redis_up")));
      return up.every((v) => v === 0);
    }, 10_000);
    await Bun.sleep(500);
    expect((await fetch(`${a.url}/readyz`)).status).toBe(503);
    expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
    phase = "back";
    await privateRedis.start();
    await waitUntil("both instances on Redis again", async () => {
      const up = await Promise.all([a, b].map(async (s) => metricValue(await (await fetch(`${s.url}/metrics`)).text(), "messaging_redis_up")));
      return up.every((v) => v === 1);
    }, 10_000);
    await Bun.sleep(300);
    stop = true;
    await load;
    for (const p of ["shared", "outage", "back"]) expect(statuses.filter((s) => s.phase === p).length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s.status >= 500)).toEqual([]);
    expect(statuses.filter((s) => s.status !== 200)).toEqual([]);
    expect((await fetch(`${a.url}/readyz`)).status).toBe(200);
    const local = metricValue(await (await fetch(`${a.url}/metrics`)).text(), "messaging_redis_local_decisions_total");
    expect(local).toBeGreaterThan(0);
    // Shared again: a fresh key of 100/min gets about 100 across both.
    const fresh = await createKey("100/min");
    const { statuses: after, elapsedMs } = await hammer([a.url, b.url], fresh, 260);
    const accepted = after.filter((s) => s === 200).length;
    expect(accepted).toBeGreaterThanOrEqual(100);
    expect(accepted).toBeLessThanOrEqual(100 + Math.ceil((elapsedMs / 60_000) * 100));
    // Logged once (the /readyz answers name it too, in their own request lines).
    const lines = a.stdout().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { msg?: string });
    expect(lines.filter((l) => l.msg?.startsWith("Redis does not answer"))).toHaveLength(1);
    expect(lines.filter((l) => l.msg?.startsWith("Redis answers again"))).toHaveLength(1);
    await Promise.all([a.stop(), b.stop()]);
  }, 90_000);
});
