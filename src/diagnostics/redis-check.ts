import { RedisClient } from "bun";
import { connect, isIP, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { ServiceConfig } from "../providers/config.ts";
import { where } from "../limits/shared.ts";
import { NoAnswerError, withTimeout } from "../with-timeout.ts";
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
 * listens there, the server refused the password, or a TLS handshake failed, so a plain TCP connection and a TLS
 * handshake of our own (with the trust this process has: the system's CAs and NODE_EXTRA_CA_CERTS, as `serve`
 * would have) tell them apart.
 */
async function explain(err: unknown, url: string, timeoutMs: number): Promise<string> {
  const message = String((err as Error)?.message ?? err);
  const { hostname, port, protocol } = new URL(url);
  const overTls = protocol === "rediss:" || protocol === "valkeys:";
  // A TLS hello sent to a server without TLS is read as the start of a command: it waits, and we time out.
  const closed = (err as { code?: string })?.code === "ERR_REDIS_CONNECTION_CLOSED";
  if (!closed && !(overTls && err instanceof NoAnswerError)) return message;
  const host = hostname.replace(/^\[|\]$/g, "");
  const portNumber = Number(port || 6379);
  const refused = await tcpRefusal(host, portNumber, timeoutMs);
  if (refused !== null) return `nothing accepts connections there (${refused})`;
  if (overTls) {
    const tls = await tlsHandshake(host, portNumber, timeoutMs);
    if (tls.kind === "untrusted") {
      return `its TLS certificate is not trusted here (${tls.reason}): give this machine the CA that signed it (NODE_EXTRA_CA_CERTS=/path/to/ca.pem), or use a certificate from a CA it trusts`;
    }
    if (tls.kind === "not-tls") return `it does not answer TLS (${tls.reason}): a server without TLS takes redis://, not rediss://`;
    if (!closed) return message;
  } else if (!(await answersPlainRedis(host, portNumber, timeoutMs))) {
    return "it does not answer Redis's plain protocol, as a server that expects TLS would not: use rediss:// (and, for a private CA, NODE_EXTRA_CA_CERTS)";
  }
  return "it accepts connections but closed this one: a wrong user or password";
}

/**
 * Runs one probe on `socket` and settles once: with what `listen` reports through `done`, or with `onTimeout` after
 * `timeoutMs` (a timer of our own: Bun's net and tls `connect` do not act on the `timeout` option, and a host that
 * drops the SYN would otherwise hold `check` for minutes). The socket is destroyed either way.
 */
function probe<T>(socket: Socket, timeoutMs: number, onTimeout: T, listen: (done: (answer: T) => void) => void): Promise<T> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(onTimeout), timeoutMs);
    function done(answer: T) {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    }
    listen(done);
  });
}

/** Whether host:port answers a plain-text PING as Redis does (`+PONG`, or an error such as `-NOAUTH`). */
function answersPlainRedis(host: string, port: number, timeoutMs: number): Promise<boolean> {
  const socket = connect({ host, port });
  return probe(socket, timeoutMs, false, (done) => {
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (chunk: Buffer) => done(chunk[0] === 0x2b || chunk[0] === 0x2d)); // '+' or '-'
    socket.once("close", () => done(false));
    socket.once("error", () => done(false));
  });
}

type TlsAnswer = { kind: "ok" } | { kind: "untrusted"; reason: string } | { kind: "not-tls"; reason: string };

/** Node's codes for a peer certificate this process does not trust (or that does not name the host). */
const UNTRUSTED = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT_ALTNAME_INVALID/;

/** A TLS handshake with host:port, verifying its certificate for `host`: completed, refused for trust, or not TLS. */
function tlsHandshake(host: string, port: number, timeoutMs: number): Promise<TlsAnswer> {
  const socket = tlsConnect({ host, port, servername: isIP(host) ? undefined : host });
  return probe<TlsAnswer>(socket, timeoutMs, { kind: "not-tls", reason: `no TLS answer within ${timeoutMs} ms` }, (done) => {
    socket.once("secureConnect", () => done({ kind: "ok" }));
    socket.once("error", (e: NodeJS.ErrnoException) => {
      const code = e.code ?? "";
      done(UNTRUSTED.test(code) ? { kind: "untrusted", reason: code } : { kind: "not-tls", reason: code || e.message });
    });
  });
}

/** Null when a TCP connection to host:port opens, else why it did not. */
function tcpRefusal(host: string, port: number, timeoutMs: number): Promise<string | null> {
  const socket = connect({ host, port });
  return probe<string | null>(socket, timeoutMs, `no answer within ${timeoutMs} ms`, (done) => {
    socket.once("connect", () => done(null));
    socket.once("error", (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
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
