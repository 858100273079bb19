import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ServeProcess } from "../helpers/binary.ts";
import type { FaultProxy } from "../helpers/fault-proxy.ts";
import { metricValue } from "../helpers/messaging.ts";
import { alive, type ServerBehindProxy, startServerBehindProxy, startTraffic, write, WRITE_ROUTES } from "./traffic.ts";

// Issue 6, defect 2: after a reset, requests in flight never answered; under a partition every database
// request hung for its whole length. With the connect, statement and idle-in-transaction bounds of
// src/db/client.ts, every request answers promptly: 202, or 503 with Retry-After.

const STATEMENT_MS = 1000;
const CONNECT_MS = 1000;
const WRITE_OUTCOME_MS = 1000;
/** Client deadline (statement timeout + a quarter), plus a new connection's connect timeout, plus slack for a loaded CI machine. */
const STALL_BOUND_MS = STATEMENT_MS * 1.25 + CONNECT_MS + 1500;
/**
 * A write whose statement was sent when the partition began cannot know whether it committed: after the
 * client deadline it spends up to the write-outcome bound trying to learn it (db/write-fence.ts), then
 * answers 503 outcome_unknown.
 */
const WRITE_STALL_BOUND_MS = STALL_BOUND_MS + WRITE_OUTCOME_MS;

let setup: ServerBehindProxy;
let proxy: FaultProxy;
let server: ServeProcess;
let messageId: string;

const READ_PATHS = () => ["/api/conversations", `/api/messages/${messageId}`];

async function timedGet(path: string, abortAfterMs = 20_000) {
  const started = performance.now();
  const res = await fetch(server.url + path, { signal: AbortSignal.timeout(abortAfterMs) });
  await res.arrayBuffer();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), ms: performance.now() - started };
}

beforeAll(async () => {
  setup = await startServerBehindProxy({
    MESSAGING_DB_POOL_SIZE: "4",
    MESSAGING_DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_MS),
    MESSAGING_DB_CONNECT_TIMEOUT_MS: String(CONNECT_MS),
    MESSAGING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: "1000",
    MESSAGING_WRITE_OUTCOME_TIMEOUT_MS: String(WRITE_OUTCOME_MS),
    // These bounds are the API's: delivery workers would take the stalled connections first and turn the
    // requests' statement timeouts into connect timeouts. The workers' own fault handling is tested elsewhere.
    MESSAGING_DELIVERY_WORKERS: "0",
  });
  ({ proxy, server } = setup);
  const first = await fetch(`${server.url}/api/messages/sms`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ from: "+12015550100", to: "+12015550101", type: "sms", body: "hi", attachments: null, timestamp: "2024-11-01T14:00:00Z" }),
  });
  messageId = ((await first.json()) as { id: string }).id;
});

afterAll(() => setup?.close());

describe("PostgreSQL faults answer promptly", () => {
  test("requests in flight across resets and cuts answer within 3 s with 202 or 503 + Retry-After, none hangs", async () => {
    const traffic = startTraffic(server.url, { writers: 9, abortAfterMs: 20_000 });
    for (let i = 0; i < 12; i++) {
      await Bun.sleep(150 + Math.random() * 100);
      if (i % 3 === 0) proxy.reset();
      else if (i % 3 === 1) proxy.hangUp();
      else void proxy.cutAfterQuerySent();
    }
    await proxy.heal();
    const answers = await traffic.stop();
    expect(alive(server.pid)).toBe(true);
    for (const route of WRITE_ROUTES) expect(answers.filter((a) => a.route === route).length).toBeGreaterThan(3);
    const late = answers.filter((a) => a.ms >= 3000 || ![202, 503].includes(a.status));
    expect(late).toEqual([]);
    for (const answer of answers.filter((a) => a.status === 503)) expect(answer.retryAfter).not.toBeNull();
  });

  test("under a partition every database route answers 503 + Retry-After within the bounds, /healthz stays 200", async () => {
    proxy.stall();
    try {
      const health = await timedGet("/healthz");
      expect(health.status).toBe(200);
      const [writes, reads] = await Promise.all([
        Promise.all(WRITE_ROUTES.map((route) => write(server.url, route, 20_000))),
        Promise.all(READ_PATHS().map((path) => timedGet(path))),
      ]);
      for (const answer of [...writes, ...reads]) {
        expect(answer.status).toBe(503);
        expect(answer.retryAfter).not.toBeNull();
      }
      for (const answer of writes) expect(answer.ms).toBeLessThan(WRITE_STALL_BOUND_MS);
      for (const answer of reads) expect(answer.ms).toBeLessThan(STALL_BOUND_MS);
      // Again, now that the stuck connections were closed: the new ones cannot connect.
      for (const route of WRITE_ROUTES) {
        const again = await write(server.url, route, 20_000);
        expect(again.status).toBe(503);
        expect(again.ms).toBeLessThan(STALL_BOUND_MS);
      }
      expect((await timedGet("/healthz")).status).toBe(200);
    } finally {
      await proxy.heal();
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metricValue(metrics, "messaging_database_timeouts_total", { kind: "statement" })).toBeGreaterThan(0);
    expect(metricValue(metrics, "messaging_database_timeouts_total", { kind: "connect" })).toBeGreaterThan(0);
  });

  test("after the partition heals, every route answers normally again", async () => {
    proxy.stall();
    await write(server.url, "send", 20_000);
    await proxy.heal();
    const deadline = Date.now() + 10_000;
    let statuses: number[] = [];
    while (Date.now() < deadline) {
      const writes = await Promise.all(WRITE_ROUTES.map((route) => write(server.url, route, 10_000)));
      const reads = await Promise.all(READ_PATHS().map((path) => timedGet(path, 10_000)));
      statuses = [...writes, ...reads].map((a) => a.status);
      if (statuses.every((s) => s === 202 || s === 200)) break;
      await Bun.sleep(200);
    }
    expect(statuses).toEqual([202, 202, 202, 200, 200]);
  });
});
