/**
 * A known outcome is never thrown away (issue 20), through the compiled binary, the fault proxy and the fake
 * Twilio, which takes no idempotency key, so a message handed over twice is a second SMS:
 * - five cuts of the connection that writes delivery results, right after the fake accepted the messages,
 *   while 2,000 messages are delivered: every message reached the fake exactly once;
 * - a partition longer than the lease while messages are in flight: the same.
 * The worker keeps the outcomes it could not write and writes them again; its claims stay its own across the
 * reconnect (src/delivery/liveness.ts), where before a lease that ran out handed them over again.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateMasterKey } from "../../src/security/keyring.ts";
import { type DeliveryDatabase, deliveryDatabase, deliveryEnv, scrapeMetric, waitUntil, writeFakeTwilioConfig } from "../delivery/binary-fixture.ts";
import { ensureBinary, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { type FaultProxy, startFaultProxy } from "../helpers/fault-proxy.ts";
import { FAKE_AUTH_TOKEN, type FakeTwilio, startFakeTwilio } from "../providers/twilio-fake.ts";

const dir = mkdtempSync(join(tmpdir(), "msg-test-known-outcomes-"));
const MASTER_KEY = generateMasterKey("k1");
const LEASE_MS = 7000;
let db: DeliveryDatabase;
let fake: FakeTwilio;
let proxy: FaultProxy;
let server: ServeProcess;

beforeAll(async () => {
  [db, fake, proxy] = await Promise.all([deliveryDatabase(), startFakeTwilio(), startFaultProxy(), ensureBinary()]).then(
    ([d, f, p]) => [d, f, p] as const,
  );
  const configFile = writeFakeTwilioConfig(dir, fake.baseUrl);
  expect((await runBinary(["migrate", "up"], { env: { DATABASE_URL: db.url } })).exitCode).toBe(0);
  const set = await runBinary(["--config", configFile, "creds", "set", "twilio-test", "auth_token", "--value-file", "-"], {
    env: { DATABASE_URL: db.url, MESSAGING_MASTER_KEYS: MASTER_KEY },
    stdin: new TextEncoder().encode(`${FAKE_AUTH_TOKEN}\n`),
  });
  expect(set.exitCode).toBe(0);
  server = await startServe({
    args: ["--config", configFile],
    env: deliveryEnv(proxy.url(db.url), {
      MESSAGING_MASTER_KEYS: MASTER_KEY,
      MESSAGING_PROVIDER_TIMEOUT_MS: "1000",
      MESSAGING_DELIVERY_LEASE_MS: String(LEASE_MS),
      MESSAGING_DELIVERY_BATCH_SIZE: "50",
      MESSAGING_DB_STATEMENT_TIMEOUT_MS: "1000",
      MESSAGING_DB_CONNECT_TIMEOUT_MS: "1000",
    }),
  });
}, 180_000);

afterAll(async () => {
  await server?.stop("SIGTERM").catch(() => {});
  await proxy?.close();
  await Promise.all([db?.close(), fake?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

/** Queues `n` SMS straight into the database (not through the proxy), each with a body naming it. */
async function seed(tag: string, n: number): Promise<void> {
  await db.sql.unsafe(`
    WITH c AS (
      INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
      VALUES ('sms', '+15005550006', '+18045550002', 'sms:+15005550006<->+18045550002', 0, now())
      ON CONFLICT (key) DO UPDATE SET message_count = conversations.message_count RETURNING id),
    m AS (
      INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp, segments, encoding, run_at)
      SELECT c.id, 'outbound', 'sms', 'sms', '+15005550006', '+18045550002', '${tag} ' || g, 'queued', now(), 1, 'GSM-7', now()
        FROM c, generate_series(1, ${n}) g
      RETURNING id)
    SELECT count(*) FROM m`);
}

/** How often the fake was asked for each message of `tag` (by body), and how many of them are sent. */
async function outcome(tag: string, n: number): Promise<{ sent: number; calls: Map<string, number> }> {
  const calls = new Map<string, number>();
  for (const r of fake.requests) {
    const body = r.form.find(([k]) => k === "Body")?.[1];
    if (body?.startsWith(`${tag} `)) calls.set(body, (calls.get(body) ?? 0) + 1);
  }
  const sent = await db.count(`messages WHERE body LIKE '${tag} %' AND status = 'sent'`);
  expect(calls.size).toBeLessThanOrEqual(n);
  return { sent, calls };
}

const repeated = (calls: Map<string, number>) => [...calls].filter(([, n]) => n > 1);

test("five cuts of the result write while 2,000 messages are delivered: each reached the fake Twilio once", async () => {
  const N = 2000;
  const failuresBefore = await scrapeMetric(server.url, "messaging_delivery_result_write_failures_total");
  await seed("cut", N);
  let cuts = 0;
  for (let i = 0; i < 5; i++) {
    // The connection carrying a result write is cut once the statement is on its way: the fake has accepted
    // those messages, and the worker cannot know whether the write committed.
    const report = await Promise.race([proxy.cutAfterQuerySent({ match: "INSERT INTO delivery_attempts" }), Bun.sleep(15_000).then(() => null)]);
    if (report) cuts += 1;
    await Bun.sleep(100);
  }
  await proxy.heal();
  expect(cuts).toBe(5);
  await waitUntil("every message sent", async () => (await db.count("messages WHERE body LIKE 'cut %' AND status <> 'sent'")) === 0, 60_000, 200);
  const { sent, calls } = await outcome("cut", N);
  expect(sent).toBe(N);
  expect(calls.size).toBe(N);
  expect(repeated(calls)).toEqual([]);
  expect(await scrapeMetric(server.url, "messaging_delivery_result_write_failures_total")).toBeGreaterThanOrEqual(failuresBefore + 5);
  console.info(`known outcomes: ${N} messages, ${cuts} result writes cut, ${repeated(calls).length} handed to the fake twice`);
}, 120_000);

test("a partition longer than the lease while messages are in flight: each reached the fake Twilio once", async () => {
  const N = 600;
  await seed("stall", N);
  await waitUntil("delivery under way", async () => (await db.count("messages WHERE body LIKE 'stall %' AND status = 'sent'")) >= 50, 30_000, 5);
  proxy.stall();
  const stalledAt = Date.now();
  await Bun.sleep(LEASE_MS + 2000);
  await proxy.heal();
  await waitUntil("every message sent", async () => (await db.count("messages WHERE body LIKE 'stall %' AND status <> 'sent'")) === 0, 60_000, 200);
  const { sent, calls } = await outcome("stall", N);
  const twice = repeated(calls).map(([body]) => body);
  if (twice.length > 0) {
    console.info(await db.sql.unsafe(`SELECT m.body, a.attempt, a.outcome, a.error, a.duration_ms, a.started_at FROM delivery_attempts a JOIN messages m ON m.id = a.message_id WHERE m.body = ANY($1::text[]) ORDER BY m.body, a.attempt LIMIT 12`, [twice]));
  }
  expect(sent).toBe(N);
  expect(calls.size).toBe(N);
  expect(repeated(calls)).toEqual([]);
  console.info(`known outcomes: a ${Date.now() - stalledAt} ms partition (lease ${LEASE_MS} ms), ${repeated(calls).length} handed to the fake twice`);
}, 120_000);
