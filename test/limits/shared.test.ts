/**
 * The limits shared through Redis (limits/shared.ts) against a real Redis server: the token bucket's figures match
 * the in-process one, concurrent takes from two instances never hand out more than the bucket holds, the auth-
 * failure counter is shared, keys carry no address and expire; and when Redis stops the checks are answered in
 * process (logged once, counted), and shared again once it answers.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { perMinute, perSecond } from "../../src/limits/limiter.ts";
import { sharedLimits } from "../../src/limits/shared.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { VERSION } from "../../src/version.ts";
import { captureLogger } from "../helpers/app.ts";
import { metricValue } from "../helpers/messaging.ts";
import { dropPrefix, keysUnder, type PrivateRedis, startPrivateRedis, TEST_REDIS_URL, testPrefix } from "../helpers/redis.ts";

const prefixes: string[] = [];
const opened: { close(): void }[] = [];
let privateRedis: PrivateRedis | undefined;
afterAll(async () => {
  for (const l of opened) l.close();
  for (const p of prefixes) await dropPrefix(TEST_REDIS_URL, p);
  await privateRedis?.stop();
});

function instance(prefix: string, url = TEST_REDIS_URL, extra: { retryMs?: number; required?: boolean } = {}) {
  const log = captureLogger();
  const metrics = createMetrics({ version: VERSION });
  const limits = sharedLimits({ url, prefix, required: extra.required ?? false, authFailureLimit: 3, authFailureWindowSecs: 60, logger: log.logger, metrics, retryMs: extra.retryMs ?? 100 });
  opened.push(limits);
  return { limits, log, metrics };
}

async function fresh(what: string) {
  const prefix = testPrefix(what);
  prefixes.push(prefix);
  const one = instance(prefix);
  expect(await one.limits.start()).toBe(true);
  return { prefix, ...one };
}

describe("token buckets in Redis", () => {
  test("a burst of the capacity with the headers' figures counting down, then a refusal with Retry-After", async () => {
    const { limits } = await fresh("burst");
    const shape = perMinute(5);
    const decisions = [];
    for (let i = 0; i < 6; i++) decisions.push(await limits.limiter.take("key:abc", shape));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true, true, false]);
    expect(decisions.map((d) => d.remaining)).toEqual([4, 3, 2, 1, 0, 0]);
    expect(decisions.every((d) => d.limit === 5)).toBe(true);
    const refused = decisions[5]!;
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(12);
    expect(refused.resetSeconds).toBeGreaterThan(40);
    expect(limits.mode()).toBe("shared");
  });

  test("refills at its rate on the Redis clock: 20/s gives one token back within about 50 ms", async () => {
    const { limits } = await fresh("refill");
    const shape = perSecond(20);
    // The burst of 20 first (a loaded machine may refill a token or two while taking them), then a refusal.
    let taken = 0;
    let refused = await limits.limiter.take("provider:p", shape);
    while (refused.allowed && taken < 200) {
      taken += 1;
      refused = await limits.limiter.take("provider:p", shape);
    }
    expect(taken).toBeGreaterThanOrEqual(20);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(50);
    await Bun.sleep(refused.retryAfterMs + 30);
    expect((await limits.limiter.take("provider:p", shape)).allowed).toBe(true);
  });

  test("two instances taking at once from one bucket of 50 get 50 between them, never more", async () => {
    const { prefix, limits } = await fresh("race");
    const other = instance(prefix);
    expect(await other.limits.start()).toBe(true);
    const shape = perMinute(50);
    const takes = await Promise.all(Array.from({ length: 200 }, (_, i) => (i % 2 ? limits : other.limits).limiter.take("key:shared", shape)));
    // The bucket refills 50/min while the takes run: allow for what a second's refill could add.
    const allowed = takes.filter((d) => d.allowed).length;
    expect(allowed).toBeGreaterThanOrEqual(50);
    expect(allowed).toBeLessThanOrEqual(51);
  });

  test("keys start with the prefix, hide the address they limit, and expire when the bucket would be full", async () => {
    const { prefix, limits } = await fresh("keys");
    await limits.limiter.take("ip:203.0.113.77", perMinute(60));
    await limits.limiter.take("sender:sms:+12015550123", perMinute(60));
    const keys = await keysUnder(TEST_REDIS_URL, prefix);
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(key.startsWith(`${prefix}rl:`)).toBe(true);
      expect(key).not.toContain("203.0.113.77");
      expect(key).not.toContain("5550123");
    }
    const client = new RedisClient(TEST_REDIS_URL);
    const ttl = Number(await client.send("PTTL", [keys[0]!]));
    client.close();
    // One token spent of 60/min: full again in 1 s (+1 s of slack).
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2000);
  });

  test("the auth-failure counter is shared: failures at one instance block the client at the other", async () => {
    const { prefix, limits } = await fresh("auth");
    const other = instance(prefix);
    await other.limits.start();
    expect((await limits.authFailures.recordFailure("198.51.100.4")).blocked).toBe(false);
    expect((await other.limits.authFailures.recordFailure("198.51.100.4")).blocked).toBe(false);
    const third = await limits.authFailures.recordFailure("198.51.100.4");
    expect(third).toEqual({ blocked: true, retryAfterSecs: 60 });
    const seen = await other.limits.authFailures.check("198.51.100.4");
    expect(seen.blocked).toBe(true);
    expect(seen.retryAfterSecs).toBeGreaterThanOrEqual(59);
    expect((await other.limits.authFailures.check("198.51.100.5")).blocked).toBe(false);
  });
});

describe("Redis stops and comes back", () => {
  test("checks are answered in process (no error), logged once and counted; shared again once Redis answers", async () => {
    privateRedis = await startPrivateRedis();
    const prefix = testPrefix("outage");
    const a = instance(prefix, privateRedis.url, { retryMs: 100, required: true });
    const b = instance(prefix, privateRedis.url, { retryMs: 100 });
    expect(await a.limits.start()).toBe(true);
    expect(await b.limits.start()).toBe(true);
    const shape = perMinute(10);
    // Shared: 10 between both instances.
    const before = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).limits.limiter.take("key:k", shape)));
    expect(before.filter((d) => d.allowed)).toHaveLength(10);
    expect(a.limits.unready()).toBeNull();

    await privateRedis.stop();
    const during = [];
    for (let i = 0; i < 30; i++) during.push(await a.limits.limiter.take("key:k", shape), await b.limits.limiter.take("key:k", shape));
    // Each instance now allows its own 10 (fresh in-process buckets).
    expect(during.filter((d) => d.allowed)).toHaveLength(20);
    expect(a.limits.mode()).toBe("local");
    expect(a.limits.unready()).toContain("Redis does not answer");
    expect(b.limits.unready()).toBeNull(); // not required: ready all the same
    const warned = a.log.lines().filter((l) => String(l.msg).startsWith("Redis does not answer"));
    expect(warned).toHaveLength(1);
    expect(JSON.stringify(warned[0])).not.toContain("redis://");
    const metrics = await a.metrics.registry.metrics();
    expect(metricValue(metrics, "messaging_redis_local_decisions_total", { check: "key" })).toBeGreaterThanOrEqual(29);
    expect(metricValue(metrics, "messaging_redis_up")).toBe(0);

    await privateRedis.start();
    const deadline = Date.now() + 5000;
    while (a.limits.mode() !== "shared" || b.limits.mode() !== "shared") {
      expect(Date.now()).toBeLessThan(deadline);
      await a.limits.limiter.take("key:probe", shape);
      await b.limits.limiter.take("key:probe", shape);
      await Bun.sleep(50);
    }
    const after = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).limits.limiter.take("key:k2", shape)));
    expect(after.filter((d) => d.allowed)).toHaveLength(10);
    expect(a.log.lines().some((l) => String(l.msg).startsWith("Redis answers again"))).toBe(true);
    expect(metricValue(await a.metrics.registry.metrics(), "messaging_redis_up")).toBe(1);
    expect(a.limits.unready()).toBeNull();
  }, 30_000);

  test("a Redis that never answered leaves the limits in process from the start", async () => {
    const { limits, log } = instance(testPrefix("never"), "redis://127.0.0.1:1", { retryMs: 60_000 });
    expect(await limits.start()).toBe(false);
    expect((await limits.limiter.take("ip:x", perMinute(1))).allowed).toBe(true);
    expect((await limits.limiter.take("ip:x", perMinute(1))).allowed).toBe(false);
    expect(log.lines().filter((l) => String(l.msg).startsWith("Redis does not answer"))).toHaveLength(1);
  });
});
