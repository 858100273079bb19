// End to end: two compiled `messaging serve` processes on one PostgreSQL database share a backlog through the
// claim's SKIP LOCKED lease; the provider is handed every message exactly once and both processes do work.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ensureBinary, killAll, type ServeProcess, startServe } from "../helpers/binary.ts";
import { type DeliveryDatabase, deliveryDatabase, deliveryEnv, keyOf, prepareDatabase, scrapeMetric, sendSms, waitUntil } from "./binary-fixture.ts";

const BACKLOG = 1000;
const running: ServeProcess[] = [];
let db: DeliveryDatabase | undefined;

beforeAll(ensureBinary, 180_000);
afterAll(async () => {
  killAll(running);
  await db?.close();
});

/**
 * Queues `BACKLOG` outbound SMS in one transaction (as test/bench/lib.sh seed_backlog does): 100 conversations of 10
 * messages, each with its job, all due at once.
 */
async function seedBacklog(database: DeliveryDatabase): Promise<void> {
  await database.sql.begin(async (tx) => {
    await tx`
      WITH c AS (
        INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
        SELECT 'sms', '+1203555' || lpad(g::text, 4, '0'), '+18045550002', 'sms:+1203555' || lpad(g::text, 4, '0') || '<->+18045550002', 10, now()
          FROM generate_series(1, ${BACKLOG / 10}::int) g
        RETURNING id, participant_a),
      m AS (
        INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp, run_at)
        SELECT c.id, 'outbound', 'sms', 'sms', c.participant_a, '+18045550002', 'backlog ' || n, 'queued', now(), now()
          FROM c, generate_series(1, 10) n
        RETURNING id)
      SELECT count(*) FROM m`;
  });
}

test(`two processes drain a backlog of ${BACKLOG}: each message is handed to the provider once, and both deliver`, async () => {
  db = await deliveryDatabase();
  await prepareDatabase(db, { latency_ms: 20 });
  // Small batches, so the backlog is many claims that the two processes' four workers compete for. The mock's
  // ledger write counts against the provider timeout; a generous one keeps a slow machine from timing a call out
  // (a retry would rightly ask the provider twice, which is not what this test is about).
  const env = deliveryEnv(db.url, {
    MESSAGING_DELIVERY_WORKERS: "2",
    MESSAGING_DELIVERY_BATCH_SIZE: "20",
    MESSAGING_DELIVERY_POLL_MS: "50",
    MESSAGING_PROVIDER_TIMEOUT_MS: "5000",
  });
  const [a, b] = await Promise.all([startServe({ env }), startServe({ env })]);
  running.push(a!, b!);

  // Seeded once both are polling, so neither can drain it before the other has started.
  const startedAt = Date.now();
  await seedBacklog(db);
  await waitUntil("the backlog drained", async () => (await db!.count("messages WHERE run_at IS NOT NULL")) === 0, 30_000, 100);
  const drainMs = Date.now() - startedAt;

  expect(await db.count("messages WHERE status = 'sent'")).toBe(BACKLOG);
  const ledger = await db.sql<{ idempotency_key: string; calls: number }[]>`SELECT idempotency_key, calls FROM mock_provider_sends`;
  expect(ledger.length).toBe(BACKLOG);
  expect(ledger.filter((row) => row.calls !== 1)).toEqual([]);
  const ids = await db.sql<{ id: string }[]>`SELECT id::text AS id FROM messages`;
  const keys = new Set(ledger.map((row) => row.idempotency_key));
  expect(ids.filter(({ id }) => !keys.has(keyOf(id)))).toEqual([]);
  // One provider call per message in the attempt log too (no call whose result was lost and retried).
  expect(await db.count("delivery_attempts")).toBe(BACKLOG);

  const processedA = await scrapeMetric(a!.url, "messaging_worker_processed_total");
  const processedB = await scrapeMetric(b!.url, "messaging_worker_processed_total");
  expect(processedA).toBeGreaterThan(0);
  expect(processedB).toBeGreaterThan(0);
  expect(processedA + processedB).toBe(BACKLOG);
  expect(await scrapeMetric(a!.url, "messaging_delivery_uncertain_total")).toBe(0);
  expect(await scrapeMetric(b!.url, "messaging_delivery_uncertain_total")).toBe(0);
  console.info(`multi-instance: ${BACKLOG} messages drained in ${drainMs} ms, ${processedA} by one process and ${processedB} by the other`);

  expect(await a!.stop()).toBe(0);
  expect(await b!.stop()).toBe(0);
}, 60_000);

test("a send accepted by an API-only instance wakes another instance's workers through NOTIFY, not the poll", async () => {
  const database = await deliveryDatabase();
  try {
    await prepareDatabase(database, { latency_ms: 0 });
    // The worker instance polls once a minute, so only the notification can make it deliver within seconds.
    const api = await startServe({ env: deliveryEnv(database.url, { MESSAGING_DELIVERY_WORKERS: "0" }) });
    running.push(api);
    const worker = await startServe({ env: deliveryEnv(database.url, { MESSAGING_DELIVERY_WORKERS: "1", MESSAGING_DELIVERY_POLL_MS: "60000" }) });
    running.push(worker);
    // Both workers' first claims (at start) found nothing; from now on only a wake-up makes them claim.
    await Bun.sleep(300);
    const sentAt = Date.now();
    const id = await sendSms(api.url);
    expect(id).toBeDefined();
    await waitUntil("the message sent", async () => (await database.count(`messages WHERE id = ${id} AND status = 'sent'`)) === 1, 10_000, 20);
    expect(Date.now() - sentAt).toBeLessThan(5000);
    expect(await scrapeMetric(worker.url, "messaging_worker_processed_total")).toBe(1);
    expect(await scrapeMetric(api.url, "messaging_worker_processed_total")).toBe(0);
    expect(await api.stop()).toBe(0);
    expect(await worker.stop()).toBe(0);
  } finally {
    await database.close();
  }
}, 60_000);
