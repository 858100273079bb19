// End to end: the compiled `messaging serve` delivering through the real mock provider (SPEC §7) on fresh
// PostgreSQL databases. Faults come only from the mock's runtime config, as an operator would inject them;
// the checks read the API, /metrics and the database the way an operator would.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import type { MockSettings } from "../../src/providers/mock/adapter.ts";
import { ensureBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { metricValue } from "../helpers/messaging.ts";

/** Fast retries and no request throttling, so a run is bounded by the faults injected, not by the defaults. */
const BASE_ENV = {
  MESSAGING_AUTH: "off",
  API_RATE_LIMIT_PER_IP_PER_MIN: "10000000",
  API_RATE_LIMIT_PER_SENDER_PER_MIN: "10000000",
  MESSAGING_DELIVERY_BACKOFF_BASE_MS: "10",
  MESSAGING_DELIVERY_BACKOFF_CAP_MS: "100",
  MESSAGING_DELIVERY_POLL_MS: "50",
};

/** The body of `PUT /api/provider/mock/config`. */
type MockConfig = MockSettings;

/** No faults: every call is accepted at once. */
const HEALTHY: MockConfig = { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null, latency_ms: 0, delivery_report_pct: 0 };

interface Attempt {
  attempt: number;
  provider: string;
  outcome: string;
}

interface MessageDetail {
  id: string;
  body: string;
  status: string;
  provider: string | null;
  provider_message_id: string | null;
  status_reason: string | null;
  attempts: Attempt[];
}

/** One `messaging serve` on its own fresh database, with a direct connection for the checks. */
interface Server {
  serve: ServeProcess;
  sql: postgres.Sql;
  call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
  putConfig(config: Partial<MockConfig>): Promise<void>;
  /** Sends one SMS; resolves its id. */
  send(body: string): Promise<string>;
  message(id: string): Promise<MessageDetail>;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

async function startServer(env: Record<string, string>): Promise<Server> {
  const database: TestDatabase = await createTestDatabase();
  const dir = mkdtempSync(join(tmpdir(), "msg-mock-e2e-"));
  let serve: ServeProcess;
  try {
    serve = await startServe({ cwd: dir, args: ["--migrate"], env: { ...BASE_ENV, DATABASE_URL: database.url, ...env } });
  } catch (err) {
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const sql = postgres(database.url, { max: 2, onnotice: () => {} });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${serve.url}${path}`, {
      method,
      headers: { accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, json: text === "" ? null : (JSON.parse(text) as unknown) };
  };
  return {
    serve,
    sql,
    call,
    putConfig: async (config) => {
      const res = await call("PUT", "/api/provider/mock/config", { ...HEALTHY, ...config });
      expect(res.status).toBe(200);
    },
    send: async (body) => {
      const res = await call("POST", "/api/messages/sms", {
        from: "+15550001111",
        to: "+15550002222",
        type: "sms",
        body,
        attachments: null,
        timestamp: "2024-11-01T12:00:00Z",
      });
      expect(res.status).toBe(202);
      return (res.json as { id: string }).id;
    },
    message: async (id) => {
      const res = await call("GET", `/api/messages/${id}`);
      expect(res.status).toBe(200);
      return res.json as MessageDetail;
    },
    metrics: async () => (await fetch(`${serve.url}/metrics`)).text(),
    stop: async () => {
      await sql.end({ timeout: 5 });
      await serve.stop();
      await database.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `probe` until it returns a value other than undefined; fails with `what` and the last value after `ms`. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/** Outbound messages by status. */
async function statusCounts(sql: postgres.Sql): Promise<Record<string, number>> {
  const rows = await sql<{ status: string; n: number }[]>`
    SELECT status, count(*)::int AS n FROM messages WHERE direction = 'outbound' GROUP BY status`;
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

/** Waits until all `n` outbound messages have `status`; a timeout names the statuses they have instead. */
async function allReach(server: Server, status: string, n: number, ms: number): Promise<void> {
  try {
    await waitFor(`${n} messages ${status}`, async () => ((await statusCounts(server.sql))[status] === n ? true : undefined), ms);
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}; statuses: ${JSON.stringify(await statusCounts(server.sql))}`);
  }
}

/** Every provider call the server made to `provider`, by /metrics. */
async function callsTo(server: Server, provider: string): Promise<number> {
  return metricValue(await server.metrics(), "messaging_delivery_attempts_total", { provider });
}

/** A message's attempt log is whole: numbered 1..n without gaps, one acceptance, and it is the last attempt. */
function expectCompleteLog(m: MessageDetail): void {
  expect(m.attempts.map((a) => a.attempt)).toEqual(m.attempts.map((_, i) => i + 1));
  expect(m.attempts.filter((a) => a.outcome === "accepted")).toHaveLength(1);
  expect(m.attempts.at(-1)?.outcome).toBe("accepted");
}

beforeAll(async () => {
  await ensureBinary();
}, 120_000);

describe("retries against a seeded mock (30% errors, 20% rate limits)", () => {
  const MESSAGES = 200;
  const SEED = 4242;

  /** The outcomes of every message's calls, in sending order, after a whole run on a fresh database. */
  async function run(seed: number): Promise<string[][]> {
    const server = await startServer({
      MESSAGING_DELIVERY_MAX_ATTEMPTS: "50",
      // High enough that runs of errors never open the breaker: this test is about retries alone.
      API_BREAKER_ERROR_THRESHOLD: "1000",
    });
    try {
      await server.putConfig({ error_pct: 30, ratelimit_pct: 20, seed });
      const ids: string[] = [];
      for (let i = 0; i < MESSAGES; i++) ids.push(await server.send(`retry ${i}`));
      await allReach(server, "sent", MESSAGES, 30_000);

      const details = await Promise.all(ids.map((id) => server.message(id)));
      for (const [i, m] of details.entries()) {
        expect(m.body).toBe(`retry ${i}`);
        expect(m.status).toBe("sent");
        expect(m.provider).toBe("sms-mms");
        expect(m.provider_message_id).toStartWith("mock-");
        expect(m.attempts.length).toBeGreaterThanOrEqual(1);
        expectCompleteLog(m);
        for (const a of m.attempts.slice(0, -1)) expect(["transient_error", "rate_limited"]).toContain(a.outcome);
      }

      // Every call the provider answered is in some message's log, outcome by outcome, and nothing else is.
      const text = await server.metrics();
      const logged = details.flatMap((m) => m.attempts);
      for (const outcome of ["accepted", "transient_error", "rate_limited", "timeout", "permanent_error"]) {
        expect({ outcome, n: logged.filter((a) => a.outcome === outcome).length }).toEqual({
          outcome,
          n: metricValue(text, "messaging_delivery_attempts_total", { provider: "sms-mms", outcome }),
        });
      }
      expect(metricValue(text, "messaging_delivery_attempts_total")).toBe(logged.length);
      expect(metricValue(text, "messaging_messages_status_total", { status: "sent" })).toBe(MESSAGES);
      // The faults were really injected: a run where no call failed would prove nothing about retries.
      expect(logged.filter((a) => a.outcome === "transient_error").length).toBeGreaterThan(MESSAGES / 10);
      expect(logged.filter((a) => a.outcome === "rate_limited").length).toBeGreaterThan(MESSAGES / 20);

      // A 429 (Retry-After 100 ms) pauses the provider: no call starts until it has passed. The margins absorb
      // the millisecond rounding of started_at and duration_ms.
      const [early] = await server.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM delivery_attempts r JOIN delivery_attempts a
            ON a.started_at > r.started_at + (r.duration_ms + 5) * interval '1 millisecond'
           AND a.started_at < r.started_at + (r.duration_ms + 95) * interval '1 millisecond'
         WHERE r.outcome = 'rate_limited'`;
      expect(early!.n).toBe(0);

      // The older suite's check: the JSON snapshot counts every message the workers got accepted.
      const processed = await waitFor(
        "worker_processed to reach the sent messages",
        async () => {
          const res = await fetch(`${server.serve.url}/metrics`, { headers: { accept: "application/json" } });
          const n = ((await res.json()) as { worker_processed: number }).worker_processed;
          return n >= MESSAGES ? n : undefined;
        },
        5_000,
      );
      expect(processed).toBe(MESSAGES);

      return details.map((m) => m.attempts.map((a) => a.outcome));
    } finally {
      await server.stop();
    }
  }

  let first: string[][];

  test("every message ends sent with a complete attempt log that matches the provider-call metrics", async () => {
    first = await run(SEED);
    expect(first).toHaveLength(MESSAGES);
  }, 45_000);

  test("the same seed on a fresh database gives every message the same attempts; another seed does not", async () => {
    expect(first).toBeDefined();
    const again = await run(SEED);
    expect(again).toEqual(first);
    const other = await run(SEED + 1);
    expect(other).toHaveLength(MESSAGES);
    expect(other).not.toEqual(first);
    // Not merely a different order of the same runs: the per-message counts themselves differ.
    expect(other.map((o) => o.length)).not.toEqual(first.map((o) => o.length));
  }, 60_000);
});

describe("the circuit breaker against a mock that fails every call", () => {
  const MESSAGES = 30;
  const OPEN_MS = 1000;
  const THRESHOLD = 3;
  let server: Server;

  beforeAll(async () => {
    server = await startServer({ API_BREAKER_ERROR_THRESHOLD: String(THRESHOLD), API_BREAKER_OPEN_SECS: String(OPEN_MS / 1000) });
  }, 30_000);
  afterAll(() => server?.stop());

  test("holds calls to the threshold plus one probe per open period, then closes once the provider recovers", async () => {
    await server.putConfig({ error_pct: 100 });
    const started = Date.now();
    for (let i = 0; i < MESSAGES; i++) await server.send(`breaker ${i}`);
    await waitFor("the breaker to open", async () => (metricValue(await server.metrics(), "messaging_breaker_state", { provider: "sms-mms" }) === 2 ? true : undefined), 5_000);
    await Bun.sleep(2_500);

    const text = await server.metrics();
    const elapsed = Date.now() - started;
    const calls = metricValue(text, "messaging_delivery_attempts_total", { provider: "sms-mms" });
    // The threshold's failures open it (plus one call may be answered as it opens), then one probe per cool-down.
    expect(calls).toBeGreaterThanOrEqual(THRESHOLD);
    expect(calls).toBeLessThanOrEqual(THRESHOLD + 1 + Math.ceil(elapsed / OPEN_MS));
    expect(metricValue(text, "messaging_delivery_attempts_total", { provider: "sms-mms", outcome: "transient_error" })).toBe(calls);
    const [logged] = await server.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM delivery_attempts`;
    expect(logged!.n).toBe(calls);
    expect([1, 2]).toContain(metricValue(text, "messaging_breaker_state", { provider: "sms-mms" }));
    expect(metricValue(text, "messaging_breaker_transitions_total", { provider: "sms-mms", to: "open" })).toBeGreaterThanOrEqual(2);
    expect(metricValue(text, "messaging_breaker_transitions_total", { provider: "sms-mms", to: "half_open" })).toBeGreaterThanOrEqual(1);
    expect((await statusCounts(server.sql)).sent ?? 0).toBe(0);

    await server.putConfig(HEALTHY);
    // The next probe comes within one cool-down; its success lets the whole queue out.
    await allReach(server, "sent", MESSAGES, OPEN_MS + 5_000);
    const after = await server.metrics();
    expect(metricValue(after, "messaging_breaker_state", { provider: "sms-mms" })).toBe(0);
    expect(metricValue(after, "messaging_breaker_transitions_total", { provider: "sms-mms", to: "closed" })).toBe(1);
    expect(metricValue(after, "messaging_delivery_attempts_total", { provider: "sms-mms", outcome: "accepted" })).toBe(MESSAGES);
  }, 20_000);
});

describe("one server: runtime config, delivery reports", () => {
  let server: Server;

  beforeAll(async () => {
    // No giving up either: the first test needs every message still failing once the last of its sends is in,
    // and a loaded machine's sends can take longer than the default ten calls of 10–100 ms backoff.
    server = await startServer({ API_BREAKER_ERROR_THRESHOLD: "1000", MESSAGING_DELIVERY_MAX_ATTEMPTS: "1000" });
  }, 30_000);
  afterAll(() => server?.stop());

  test("a config PUT takes effect at the very next dispatch: failing messages are sent within the backoff cap", async () => {
    await server.putConfig({ error_pct: 100 });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await server.send(`config ${i}`));
    await waitFor(
      "every message to have failed twice",
      async () => {
        const [row] = await server.sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM messages WHERE run_at IS NOT NULL AND attempts >= 2`;
        return row!.n === ids.length ? true : undefined;
      },
      // Generous: a 2-core machine running the rest of the suite alongside once took more than 10 s here.
      20_000,
    );

    await server.putConfig(HEALTHY);
    const healedAt = Date.now();
    await allReach(server, "sent", ids.length, 5_000);
    // Backoff cap (100 ms) + poll (50 ms) + one claim and write: a config cached for seconds would miss this,
    // and the margin is for a loaded machine (about 1 s seen with both cores busy).
    expect(Date.now() - healedAt).toBeLessThan(2_500);
    for (const id of ids) {
      const m = await server.message(id);
      expect(m.status).toBe("sent");
      expectCompleteLog(m);
      expect(m.attempts.length).toBeGreaterThanOrEqual(3);
      for (const a of m.attempts.slice(0, -1)) expect(a.outcome).toBe("transient_error");
    }
  }, 40_000);

  test("delivery reports: the mock reports delivered on its own; a later report cannot move it back", async () => {
    await server.putConfig({ delivery_report_pct: 100 });
    const before = (await statusCounts(server.sql)).delivered ?? 0;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await server.send(`report ${i}`));
    await waitFor("the reported messages to be delivered", async () => ((await statusCounts(server.sql)).delivered === before + ids.length ? true : undefined), 5_000);
    for (const id of ids) expect((await server.message(id)).status).toBe("delivered");

    const late = await server.call("POST", "/api/provider/mock/reports", { message_id: ids[0], status: "failed", error_code: "30008" });
    expect(late.status).toBe(202);
    expect(late.json).toEqual({ status: "accepted", id: ids[0], message_status: "delivered" });
    const kept = await server.message(ids[0]!);
    expect(kept.status).toBe("delivered");
    expect(kept.status_reason).toBeNull();
  }, 15_000);

  test("delivery reports: a sent message reported undelivered shows the provider's code as its reason", async () => {
    await server.putConfig(HEALTHY);
    const id = await server.send("report undelivered");
    await waitFor("the message to be sent", async () => ((await server.message(id)).status === "sent" ? true : undefined), 5_000);

    const res = await server.call("POST", "/api/provider/mock/reports", { message_id: id, status: "undelivered", error_code: "30003" });
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ status: "accepted", id, message_status: "undelivered" });
    const m = await server.message(id);
    expect(m.status).toBe("undelivered");
    expect(m.status_reason).toContain("30003");
    expect(metricValue(await server.metrics(), "messaging_messages_status_total", { status: "undelivered" })).toBe(1);
  }, 15_000);

  test("the JSON snapshot's worker_processed reaches the number of messages the workers got accepted", async () => {
    await server.putConfig(HEALTHY);
    for (let i = 0; i < 10; i++) await server.send(`processed ${i}`);
    const accepted = async () => {
      const [row] = await server.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM messages WHERE direction = 'outbound' AND provider_message_id IS NOT NULL`;
      return row!.n;
    };
    const outbound = async () => {
      const [row] = await server.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM messages WHERE direction = 'outbound'`;
      return row!.n;
    };
    const total = await outbound();
    await waitFor("every message to be accepted", async () => ((await accepted()) === total ? true : undefined), 5_000);
    const processed = await waitFor(
      "worker_processed to reach the accepted messages",
      async () => {
        const res = await fetch(`${server.serve.url}/metrics`, { headers: { accept: "application/json" } });
        const n = ((await res.json()) as { worker_processed: number }).worker_processed;
        return n >= total ? n : undefined;
      },
      5_000,
    );
    expect(processed).toBe(total);
  }, 15_000);
});

describe("delivery reports while a batch waits on a hung call", () => {
  const TIMEOUT_MS = 1000;
  let server: Server;

  beforeAll(async () => {
    server = await startServer({
      API_BREAKER_ERROR_THRESHOLD: "1000",
      MESSAGING_DELIVERY_MAX_ATTEMPTS: "50",
      MESSAGING_PROVIDER_TIMEOUT_MS: String(TIMEOUT_MS),
    });
  }, 30_000);
  afterAll(() => server?.stop());

  // A batch's results are written together, after its slowest call; the mock reports 200 ms after accepting.
  // A report that arrives before the acceptance is written must not be lost: a provider retries a webhook we
  // could not match, and so must the mock.
  test("every accepted message is reported delivered even when its batch is held up by a timeout", async () => {
    await server.putConfig({ error_pct: 100 });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await server.send(`slow batch ${i}`));
    await waitFor(
      "every message to have failed once",
      async () => {
        const [row] = await server.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM messages WHERE run_at IS NOT NULL AND attempts >= 1`;
        return row!.n === ids.length ? true : undefined;
      },
      5_000,
    );
    // Hold the workers, then let one claim take every message: half of the calls hang until the timeout.
    await server.putConfig({ timeout_pct: 50, seed: 7, delivery_report_pct: 100 });
    await allReach(server, "delivered", ids.length, 6 * TIMEOUT_MS + 3_000);
    // The hang really happened: without one, every batch would be written before its reports arrive.
    const [timeouts] = await server.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM delivery_attempts WHERE error = ${`no answer within ${TIMEOUT_MS} ms`}`;
    expect(timeouts!.n).toBeGreaterThan(0);
  }, 20_000);
});
