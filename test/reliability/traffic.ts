/**
 * Traffic for the database-fault tests: concurrent writers that each loop over the write routes that touch
 * PostgreSQL differently (a batched single send, a keyed send in its own transaction, a webhook), recording
 * every answer's status and time. A request that does not answer within `abortAfterMs` is recorded as a hang.
 *
 *   const traffic = startTraffic(server.url, { writers: 8 });
 *   … inject faults …
 *   const answers = await traffic.stop();    // [{ route, status, ms }]   (status 0: no answer)
 */
import { ensureBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { type FaultProxy, startFaultProxy } from "../helpers/fault-proxy.ts";
import { phone, smsSend, smsWebhook } from "../helpers/messaging.ts";

/** The compiled binary on a fresh PostgreSQL database reached through the fault proxy. */
export interface ServerBehindProxy {
  pg: TestDatabase;
  proxy: FaultProxy;
  server: ServeProcess;
  close(): Promise<void>;
}

/** Starts `messaging serve --migrate` behind a fault proxy, rate limits out of the way, plus `env`. */
export async function startServerBehindProxy(env: Record<string, string>): Promise<ServerBehindProxy> {
  await ensureBinary();
  const pg = await createTestDatabase();
  const proxy = await startFaultProxy();
  const server = await startServe({
    env: {
      DATABASE_URL: proxy.url(pg.url),
      MESSAGING_AUTO_MIGRATE: "true",
      API_RATE_LIMIT_PER_IP_PER_MIN: "10000000",
      API_RATE_LIMIT_PER_SENDER_PER_MIN: "10000000",
      ...env,
    },
  });
  return {
    pg,
    proxy,
    server,
    async close() {
      await server.stop("SIGTERM").catch(() => {});
      await proxy.close();
      await pg.drop();
    },
  };
}

export type WriteRoute = "send" | "keyed send" | "webhook";
export const WRITE_ROUTES: WriteRoute[] = ["send", "keyed send", "webhook"];

export interface Answer {
  route: WriteRoute;
  /** HTTP status, or 0 when nothing came back in time (or the connection failed). */
  status: number;
  retryAfter: string | null;
  ms: number;
}

/** One write request on `route`, with fresh addresses (no rate limit is shared between calls). */
export async function write(baseUrl: string, route: WriteRoute, abortAfterMs: number): Promise<Answer> {
  const [path, body, headers] =
    route === "send"
      ? ["/api/messages/sms", smsSend({ from: phone() }), {}]
      : route === "keyed send"
        ? ["/api/messages/sms", smsSend({ from: phone() }), { "idempotency-key": crypto.randomUUID() }]
        : ["/api/webhooks/sms", smsWebhook(), {}];
  const started = performance.now();
  try {
    const res = await fetch(baseUrl + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(abortAfterMs),
    });
    await res.arrayBuffer();
    return { route, status: res.status, retryAfter: res.headers.get("retry-after"), ms: performance.now() - started };
  } catch {
    return { route, status: 0, retryAfter: null, ms: performance.now() - started };
  }
}

export interface Traffic {
  /** Answers so far. */
  answers(): Answer[];
  /** Lets every writer finish its current request; resolves all answers. */
  stop(): Promise<Answer[]>;
}

export function startTraffic(baseUrl: string, options: { writers: number; abortAfterMs?: number }): Traffic {
  const answers: Answer[] = [];
  let stopping = false;
  const writers = Array.from({ length: options.writers }, async (_, n) => {
    for (let i = n; !stopping; i++) {
      const answer = await write(baseUrl, WRITE_ROUTES[i % WRITE_ROUTES.length]!, options.abortAfterMs ?? 30_000);
      answers.push(answer);
      // A server that is gone refuses at once: do not spin.
      if (answer.status === 0) await Bun.sleep(50);
    }
  });
  return {
    answers: () => answers,
    stop: async () => {
      stopping = true;
      await Promise.all(writers);
      return answers;
    },
  };
}

/** True while the process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
