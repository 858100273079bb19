/**
 * Redis for the tests: the machine's server at 127.0.0.1:6379 (TEST_REDIS_URL; `.ci/run` starts it when it does
 * not answer), with a key prefix of the test's own that `dropPrefix` removes; and a private `redis-server` on a free
 * port for the tests that stop and restart it.
 */
import { RedisClient } from "bun";
import { freePort } from "./ports.ts";

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** A prefix no other test or run uses. */
export const testPrefix = (what: string) => `messaging-test:${what}:${process.pid}:${crypto.randomUUID().slice(0, 8)}:`;

/** Deletes every key under `prefix`. */
export async function dropPrefix(url: string, prefix: string): Promise<void> {
  const client = new RedisClient(url);
  try {
    let cursor = "0";
    do {
      const [next, keys] = (await client.send("SCAN", [cursor, "MATCH", `${prefix}*`, "COUNT", "1000"])) as [string, string[]];
      cursor = next;
      if (keys.length > 0) await client.send("DEL", keys);
    } while (cursor !== "0");
  } finally {
    client.close();
  }
}

/** Keys under `prefix`, for tests that look at what was written. */
export async function keysUnder(url: string, prefix: string): Promise<string[]> {
  const client = new RedisClient(url);
  try {
    return (await client.send("KEYS", [`${prefix}*`])) as string[];
  } finally {
    client.close();
  }
}

export interface PrivateRedis {
  url: string;
  port: number;
  /** Stops the server (SIGKILL: connections drop at once, as when a host dies). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
}

/** A `redis-server` of the test's own on a free port, without persistence. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let proc: ReturnType<typeof Bun.spawn> | null = null;
  const start = async () => {
    proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdout: "ignore", stderr: "ignore" });
    const deadline = Date.now() + 10_000;
    for (;;) {
      const probe = new RedisClient(`redis://127.0.0.1:${port}`, { autoReconnect: false, connectionTimeout: 500 });
      try {
        if ((await probe.send("PING", [])) === "PONG") return;
      } catch {
        // not up yet
      } finally {
        probe.close();
      }
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port}`);
      await Bun.sleep(50);
    }
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    stop: async () => {
      const running = proc;
      proc = null;
      if (!running) return;
      running.kill("SIGKILL");
      await running.exited;
    },
  };
}

/** Whether `redis-server` is on PATH (the private-server tests skip, saying so, without it). */
export const hasRedisServer = () => Bun.which("redis-server") !== null;

export interface TlsRedis {
  /** `rediss://127.0.0.1:PORT`: the certificate names 127.0.0.1 and is signed by `caFile`'s CA. */
  url: string;
  port: number;
  /** The CA's certificate (PEM), what a client must trust: NODE_EXTRA_CA_CERTS for the binary. */
  caFile: string;
  /** `redis-cli` arguments that reach it over TLS, for looking at what was written. */
  cli: string[];
  stop(): Promise<void>;
}

/**
 * A `redis-server` of the test's own that speaks only TLS, on a free port, with a certificate for 127.0.0.1 from a
 * throw-away CA made by `openssl` in `dir`; instead, the reason as a string when this machine's openssl or redis-server
 * cannot do it.
 */
export async function startTlsRedis(dir: string): Promise<TlsRedis | string> {
  if (!hasRedisServer()) return "redis-server is not on PATH";
  if (Bun.which("openssl") === null) return "openssl is not on PATH";
  const run = (args: string[]) => Bun.spawnSync(["openssl", ...args], { cwd: dir, stdout: "ignore", stderr: "pipe" });
  const steps = [
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=messaging test CA"],
    ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
  ];
  for (const step of steps) {
    const r = run(step);
    if (r.exitCode !== 0) return `openssl ${step[0]} failed: ${r.stderr.toString().trim()}`;
  }
  await Bun.write(`${dir}/ext.cnf`, "subjectAltName=IP:127.0.0.1\n");
  const signed = run(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf"]);
  if (signed.exitCode !== 0) return `openssl x509 failed: ${signed.stderr.toString().trim()}`;
  const port = await freePort();
  const proc = Bun.spawn(
    ["redis-server", "--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1", "--tls-cert-file", "server.pem", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"],
    { cwd: dir, stdout: "ignore", stderr: "ignore" },
  );
  const cli = ["redis-cli", "--tls", "--cacert", `${dir}/ca.pem`, "-h", "127.0.0.1", "-p", String(port)];
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) return `redis-server did not start with TLS (exit ${proc.exitCode}): this build may lack it`;
    if (Bun.spawnSync([...cli, "ping"]).stdout.toString().trim() === "PONG") break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      return `redis-server with TLS did not answer on port ${port}`;
    }
    await Bun.sleep(50);
  }
  return {
    url: `rediss://127.0.0.1:${port}`,
    port,
    caFile: `${dir}/ca.pem`,
    cli,
    stop: async () => {
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}
