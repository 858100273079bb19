/**
 * The limits shared by every instance through Redis (`MESSAGING_REDIS_URL`): each check is one Lua script run
 * atomically by the Redis server, on its own clock (`TIME`), so instances with drifting clocks agree and two
 * instances taking the last token at once cannot both get it.
 *
 * When Redis does not answer (down, unreachable, slower than `timeoutMs`), the check is answered by the same limit
 * in this process instead: the service keeps serving, each instance then allowing its own full budget (as without
 * Redis). The change is logged once, counted in `messaging_redis_local_decisions_total`, shown by
 * `messaging_redis_up`, and the link is tried again at most once per `retryMs` until Redis answers, when the
 * shared limits resume (with the buckets as Redis kept them).
 *
 * Keys: `<prefix>rl:<kind>:<hash>` for buckets and `<prefix>af:<hash>` for auth failures. The identifying part (an
 * address, a phone number, a key id) is hashed, so Redis holds no personal data; each key expires once its bucket
 * would be full again (or its failures forgotten), so an idle client leaves nothing behind.
 */
import { RedisClient } from "bun";
import { createHash } from "node:crypto";
import { type BucketDecision, bucketDecision } from "../domain/token-bucket.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { AuthThrottle } from "../security/auth-failures.ts";
import { type BucketShape, type FailureCounter, type Limiter, type Limits, LocalFailureCounter, LocalLimiter } from "./limiter.ts";
import { withTimeout } from "../with-timeout.ts";

/**
 * KEYS[1]: the bucket (a hash of `tokens` and `at`, ms on the Redis clock). ARGV: capacity, tokens per ms.
 * Refills for the time passed, takes one token when there is one, keeps the bucket until it would be full again.
 * Answers {1 or 0, tokens left as text} (a Lua number returned as such would be truncated to an integer).
 */
export const TOKEN_BUCKET_SCRIPT = `
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
  at = now
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 1000)
return {allowed, tostring(tokens)}
`;

/**
 * KEYS[1]: one client's failures (`count`, `at`, `blocked` until, ms on the Redis clock). ARGV: limit, window ms,
 * `check` or `fail`. The same leaky count as security/auth-failures.ts: each failure adds 1, the count leaks
 * `limit` per window, and the failure that brings it past `limit − 1` blocks the client for a whole window.
 * Answers {1 when blocked, ms until served again}.
 */
export const AUTH_FAILURES_SCRIPT = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'count', 'at', 'blocked')
local count = tonumber(state[1]) or 0
local at = tonumber(state[2]) or now
local blocked = tonumber(state[3]) or 0
if blocked > now then
  return {1, blocked - now}
end
if ARGV[3] ~= 'fail' then
  return {0, 0}
end
count = math.max(0, count - math.max(0, now - at) * limit / window) + 1
blocked = 0
if count > limit - 1 then
  blocked = now + window
end
redis.call('HSET', KEYS[1], 'count', tostring(count), 'at', tostring(now), 'blocked', tostring(blocked))
redis.call('PEXPIRE', KEYS[1], math.max(window, math.ceil(count * window / limit)) + 1000)
if blocked > now then
  return {1, blocked - now}
end
return {0, 0}
`;

const sha1 = (text: string) => createHash("sha1").update(text).digest("hex");

/** `ip:203.0.113.9` → `ip:<hash>`: the kind stays readable, the identifying part does not reach Redis. */
export function redisName(name: string): string {
  const colon = name.indexOf(":");
  const kind = colon < 0 ? "" : name.slice(0, colon + 1);
  return `${kind}${createHash("sha256").update(name).digest("hex").slice(0, 32)}`;
}

export interface RedisLinkOptions {
  url: string;
  /** Longest wait for one answer before the check is answered in process (and the link counted as down). */
  timeoutMs?: number;
  /** Least time between two attempts to reach Redis again while it is down. */
  retryMs?: number;
  logger: Logger;
  metrics: Metrics;
  now?: () => number;
}

/** Where a Redis URL points, for logs and `check`: host and port only (a URL may carry a password). */
export function where(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || "6379"}`;
  } catch {
    return "(unparsable URL)";
  }
}

/**
 * One connection to Redis and whether it answers. `run` answers the script's reply, or `undefined` when Redis did
 * not answer (the caller then decides in process). While down, nothing waits on Redis: a reconnection is tried in
 * the background at most once per `retryMs`.
 */
export class RedisLink {
  private client: RedisClient | null = null;
  private up = false;
  /** Whether the last state change was logged as down (the first failure at start-up is logged too). */
  private reportedDown = false;
  private connecting: Promise<boolean> | null = null;
  private nextAttempt = 0;
  private closed = false;
  private readonly loaded = new Set<string>();
  private readonly timeoutMs: number;
  private readonly retryMs: number;
  private readonly now: () => number;

  constructor(private readonly options: RedisLinkOptions) {
    this.timeoutMs = options.timeoutMs ?? 500;
    this.retryMs = options.retryMs ?? 1000;
    this.now = options.now ?? Date.now;
    options.metrics.redisUp.set(0);
  }

  get answering(): boolean {
    return this.up;
  }

  /** Connects now; resolves true when Redis answered (the service starts either way). */
  start(): Promise<boolean> {
    return this.reconnect();
  }

  async run(script: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    if (!this.up || !this.client) {
      if (this.now() >= this.nextAttempt) void this.reconnect();
      return undefined;
    }
    const client = this.client;
    try {
      return await this.deadline(this.evaluate(client, script, keys, args.map(String)));
    } catch (err) {
      this.down(err, client);
      return undefined;
    }
  }

  close(): void {
    this.closed = true;
    this.client?.close();
    this.client = null;
    this.up = false;
  }

  private async evaluate(client: RedisClient, script: string, keys: string[], args: string[]): Promise<unknown> {
    const sha = sha1(script);
    if (this.loaded.has(sha)) {
      try {
        return await client.send("EVALSHA", [sha, String(keys.length), ...keys, ...args]);
      } catch (err) {
        // A restarted Redis has forgotten its scripts: send the text once more.
        if (!String((err as Error)?.message ?? err).includes("NOSCRIPT")) throw err;
      }
    }
    const reply = await client.send("EVAL", [script, String(keys.length), ...keys, ...args]);
    this.loaded.add(sha);
    return reply;
  }

  private deadline<T>(promise: Promise<T>): Promise<T> {
    return withTimeout(promise, this.timeoutMs);
  }

  private reconnect(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (this.connecting) return this.connecting;
    this.nextAttempt = this.now() + this.retryMs;
    this.connecting = (async () => {
      const client = new RedisClient(this.options.url, {
        // Fail at once while disconnected (the check is then answered in process), and let this class decide
        // when to try again rather than queueing commands behind a reconnection.
        enableOfflineQueue: false,
        autoReconnect: false,
        connectionTimeout: Math.max(this.timeoutMs, 1000),
      });
      try {
        await this.deadline(client.connect());
        await this.deadline(client.send("PING", []));
      } catch (err) {
        client.close();
        this.down(err, null);
        return false;
      }
      if (this.closed) {
        client.close();
        return false;
      }
      this.client?.close();
      this.client = client;
      this.loaded.clear();
      client.onclose = (err) => this.down(err, client);
      this.up = true;
      this.options.metrics.redisUp.set(1);
      if (this.reportedDown) this.options.logger.info({ redis: where(this.options.url) }, "Redis answers again: rate limits are shared by all instances");
      else this.options.logger.info({ redis: where(this.options.url) }, "rate limits are shared by all instances through Redis");
      this.reportedDown = false;
      return true;
    })().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private down(err: unknown, client: RedisClient | null): void {
    if (client !== null && client !== this.client) return; // an old connection closing after its replacement
    const wasUp = this.up;
    this.up = false;
    this.options.metrics.redisUp.set(0);
    if (client) {
      this.client = null;
      client.onclose = null;
      client.close();
      this.nextAttempt = this.now() + this.retryMs;
    }
    if ((wasUp || !this.reportedDown) && !this.closed) {
      this.reportedDown = true;
      this.options.logger.warn(
        { redis: where(this.options.url), err: String((err as Error)?.message ?? err) },
        "Redis does not answer: each instance applies the rate limits on its own until it does",
      );
    }
  }
}

/** Buckets in Redis; the in-process buckets answer while Redis does not. */
export class SharedLimiter implements Limiter {
  private readonly local = new LocalLimiter();

  constructor(
    private readonly link: RedisLink,
    private readonly prefix: string,
    private readonly metrics: Metrics,
  ) {}

  async take(name: string, shape: BucketShape): Promise<BucketDecision> {
    const reply = await this.link.run(TOKEN_BUCKET_SCRIPT, [`${this.prefix}rl:${redisName(name)}`], [shape.capacity, shape.ratePerMs]);
    if (Array.isArray(reply) && reply.length === 2) {
      return bucketDecision(Number(reply[0]) === 1, Number(reply[1]), shape.capacity, shape.ratePerMs);
    }
    this.metrics.redisLocalDecisions.inc({ check: name.slice(0, name.indexOf(":")) || "other" });
    return this.local.takeNow(name, shape);
  }
}

/** The auth-failure counter in Redis; the in-process counter answers while Redis does not. */
export class SharedFailureCounter implements FailureCounter {
  private readonly local: LocalFailureCounter;

  constructor(
    private readonly link: RedisLink,
    private readonly prefix: string,
    private readonly options: { limit: number; windowSecs: number },
    private readonly metrics: Metrics,
  ) {
    this.local = new LocalFailureCounter(options);
  }

  check(client: string): Promise<AuthThrottle> {
    return this.ask(client, "check");
  }

  recordFailure(client: string): Promise<AuthThrottle> {
    return this.ask(client, "fail");
  }

  private async ask(client: string, mode: "check" | "fail"): Promise<AuthThrottle> {
    const reply = await this.link.run(
      AUTH_FAILURES_SCRIPT,
      [`${this.prefix}af:${redisName(`auth:${client}`)}`],
      [this.options.limit, this.options.windowSecs * 1000, mode],
    );
    if (Array.isArray(reply) && reply.length === 2) {
      const blocked = Number(reply[0]) === 1;
      return { blocked, retryAfterSecs: blocked ? Math.max(1, Math.ceil(Number(reply[1]) / 1000)) : 0 };
    }
    this.metrics.redisLocalDecisions.inc({ check: "auth" });
    return mode === "fail" ? this.local.recordFailure(client) : this.local.check(client);
  }
}

export interface SharedLimitsOptions {
  url: string;
  prefix: string;
  required: boolean;
  authFailureLimit: number;
  authFailureWindowSecs: number;
  logger: Logger;
  metrics: Metrics;
  timeoutMs?: number;
  retryMs?: number;
}

/** Every limit in Redis (with the in-process fallback); `start` connects before the service listens. */
export function sharedLimits(options: SharedLimitsOptions): Limits & { start(): Promise<boolean> } {
  const link = new RedisLink({
    url: options.url,
    logger: options.logger,
    metrics: options.metrics,
    ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }),
    ...(options.retryMs !== undefined && { retryMs: options.retryMs }),
  });
  return {
    limiter: new SharedLimiter(link, options.prefix, options.metrics),
    authFailures: new SharedFailureCounter(link, options.prefix, { limit: options.authFailureLimit, windowSecs: options.authFailureWindowSecs }, options.metrics),
    mode: () => (link.answering ? "shared" : "local"),
    unready: () => {
      if (!options.required || link.answering) return null;
      void link.run("return 1", [], []); // a probe of /readyz is a chance to reconnect
      return "Redis does not answer (MESSAGING_REDIS_REQUIRED): rate limits are per instance";
    },
    start: () => link.start(),
    close: () => link.close(),
  };
}
