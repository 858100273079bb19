import { RedisClient } from "bun";
import { connect } from "node:net";
import type { ServiceConfig } from "../providers/config.ts";
import { where } from "../limits/shared.ts";
import { withTimeout } from "../with-timeout.ts";
import type { CheckResult } from "./result.ts";

/** How long `check` waits for Redis to connect and for each answer. */
const REDIS_CHECK_TIMEOUT_MS = 2000;

/** The script `check` runs: what the shared limits need of the server (scripting, and `TIME` inside a script). */
const PROBE_SCRIPT = "return redis.call('TIME')[1]";

/**
 * The Redis of the shared limits (`MESSAGING_REDIS_URL`), as `serve` would use it: connects, runs a script that
 * reads the server's clock (what every limit check does, limits/shared.ts) and reads the server's version. A Redis
 * that does not answer is a warning, since `serve` starts anyway and counts each instance's limits alone until it
 * does; with `MESSAGING_REDIS_REQUIRED` it is an error, since /readyz then answers 503. The URL's password is never
 * shown: the report names host and port, and a reason that repeats the password has it replaced.
 */
export async function redisCheck(config: ServiceConfig, timeoutMs = REDIS_CHECK_TIMEOUT_MS): Promise<CheckResult[]> {
  if (!config.redisUrl) {
    return [{ check: "redis", status: "ok", message: "no Redis configured (MESSAGING_REDIS_URL): each instance applies the rate limits on its own" }];
  }
  const at = where(config.redisUrl);
  const client = new RedisClient(config.redisUrl, { enableOfflineQueue: false, autoReconnect: false, connectionTimeout: timeoutMs });
  try {
    await withTimeout(client.connect(), timeoutMs);
    const clock = await withTimeout(client.send("EVAL", [PROBE_SCRIPT, "0"]), timeoutMs);
    if (!/^\d+$/.test(String(clock))) throw new Error(`a script reading the server's clock answered ${JSON.stringify(clock)}`);
    const info = String(await withTimeout(client.send("INFO", ["server"]), timeoutMs));
    const version = /^(?:valkey|redis)_version:(\S+)/m.exec(info)?.[1];
    return [{ check: "redis", status: "ok", message: `Redis at ${at}${version ? ` (version ${version})` : ""} answers and runs the limits' scripts: rate limits are shared by every instance` }];
  } catch (err) {
    const reason = hidePassword(await explain(err, config.redisUrl, timeoutMs), config.redisUrl);
    return [
      config.redisRequired
        ? { check: "redis", status: "error", message: `cannot use Redis at ${at}: ${reason}; with MESSAGING_REDIS_REQUIRED, /readyz answers 503 until it answers` }
        : { check: "redis", status: "warn", message: `cannot use Redis at ${at}: ${reason}; serve starts anyway, each instance applying the rate limits on its own until Redis answers` },
    ];
  } finally {
    client.close();
  }
}

/**
 * Why it failed, in words an operator can act on. Bun's client says only "Connection closed" whether nothing
 * listens there or the server refused the password, so a plain TCP connection tells the two apart.
 */
async function explain(err: unknown, url: string, timeoutMs: number): Promise<string> {
  const message = String((err as Error)?.message ?? err);
  if ((err as { code?: string })?.code !== "ERR_REDIS_CONNECTION_CLOSED") return message;
  const { hostname, port } = new URL(url);
  const refused = await tcpRefusal(hostname.replace(/^\[|\]$/g, ""), Number(port || 6379), timeoutMs);
  return refused === null
    ? "it accepts connections but closed this one: a wrong user or password, or a server that expects TLS (rediss://) or not"
    : `nothing accepts connections there (${refused})`;
}

/** Null when a TCP connection to host:port opens, else why it did not. */
function tcpRefusal(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    socket.once("connect", () => {
      socket.destroy();
      resolve(null);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve(`no answer within ${timeoutMs} ms`);
    });
    socket.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

/** The reason without the URL's password, should a driver's message repeat it. */
function hidePassword(reason: string, url: string): string {
  let password = "";
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    // an unparsable URL was refused by the configuration already
  }
  return password.length > 0 ? reason.replaceAll(password, "[redacted]") : reason;
}
