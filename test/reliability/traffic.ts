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
  /** When it was sent and answered (performance.now()). */
  start: number;
  end: number;
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
    const end = performance.now();
    return { route, status: res.status, retryAfter: res.headers.get("retry-after"), ms: end - started, start: started, end };
  } catch {
    const end = performance.now();
    return { route, status: 0, retryAfter: null, ms: end - started, start: started, end };
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

/** What one outage did to the traffic: the answers that ended after the cut, and when the service was ready again. */
export interface OutageRun {
  /** Answers that ended at or after the cut (the requests the outage could touch). */
  touched: Answer[];
  cutAt: number;
  restoredAt: number;
  /** Milliseconds from the restore to the first 200 from /readyz (Infinity when none came within 15 s). */
  readyAfterMs: number;
}

/**
 * Writers keep sending while every PostgreSQL connection is reset and new ones are refused for `outageMs`; then
 * the proxy heals, /readyz is polled every 50 ms, and the traffic runs on until `settleMs` after the restore.
 */
export async function runOutage(setup: ServerBehindProxy, options: { writers: number; outageMs: number; settleMs: number }): Promise<OutageRun> {
  const { proxy, server } = setup;
  const traffic = startTraffic(server.url, { writers: options.writers, abortAfterMs: 60_000 });
  await Bun.sleep(1000);
  const cutAt = performance.now();
  proxy.refuse();
  proxy.reset();
  await Bun.sleep(options.outageMs);
  await proxy.heal();
  const restoredAt = performance.now();
  let readyAfterMs = Number.POSITIVE_INFINITY;
  while (performance.now() - restoredAt < 15_000) {
    if ((await fetch(`${server.url}/readyz`).then((r) => r.status, () => 0)) === 200) {
      readyAfterMs = performance.now() - restoredAt;
      break;
    }
    await Bun.sleep(50);
  }
  await Bun.sleep(Math.max(0, options.settleMs - (performance.now() - restoredAt)));
  const answers = await traffic.stop();
  return { touched: answers.filter((a) => a.end >= cutAt), cutAt, restoredAt, readyAfterMs };
}

/** Answers to requests sent while the database was away and answered more than `ms` after it was back. */
export const answeredLate = (run: OutageRun, ms: number): Answer[] => run.touched.filter((a) => a.start < run.restoredAt && a.end > run.restoredAt + ms);
