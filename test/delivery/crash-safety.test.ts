// End to end: the compiled `messaging serve` killed while it delivers loses no acknowledged message and has the
// provider accept none twice; stopped gracefully, it gives its claimed jobs back so a restart delivers at once.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ensureBinary, killAll, type ServeProcess, startServe } from "../helpers/binary.ts";
import {
  type DeliveryDatabase,
  deliveryDatabase,
  deliveryEnv,
  keyOf,
  prepareDatabase,
  putMockConfig,
  scrapeMetric,
  sendSms,
  waitUntil,
} from "./binary-fixture.ts";

// The tests run side by side (test.concurrent), each on a database of its own: the slow call's is twelve seconds
// of waiting, and the others' bounds count from their own kill, stop or restart.
const running: ServeProcess[] = [];
const databases: DeliveryDatabase[] = [];

async function serve(db: DeliveryDatabase, env: Record<string, string> = {}): Promise<ServeProcess> {
  const s = await startServe({ args: ["--migrate"], env: deliveryEnv(db.url, env) });
  running.push(s);
  return s;
}

async function freshDatabase(): Promise<DeliveryDatabase> {
  const db = await deliveryDatabase();
  databases.push(db);
  return db;
}

beforeAll(ensureBinary, 180_000);
afterAll(async () => {
  killAll(running);
  for (const db of databases) await db.close();
});

/** Messages in `sending` whose key the provider has already accepted: the window a crash makes uncertain. */
async function acceptedUnrecorded(db: DeliveryDatabase): Promise<number> {
  return db.count("messages m JOIN mock_provider_sends s ON s.idempotency_key = 'messaging-msg-' || m.id WHERE m.status = 'sending'");
}

const MESSAGES = 400;
const WAVE = 20;

describe("serve killed mid-delivery", () => {
  test.concurrent(`SIGKILL while ${MESSAGES} sends are delivered: after a restart every message is sent, each accepted by the provider exactly once`, async () => {
    const db = await freshDatabase();
    // Small batches keep several claims in flight, so the kill lands inside some provider calls. The provider
    // timeout leaves a slow machine's ledger writes room (a timed-out call would be asked again legitimately).
    // The lease is the default minute: what frees the dead process's claims is the proof that it is gone.
    const env = { MESSAGING_DELIVERY_WORKERS: "2", MESSAGING_DELIVERY_BATCH_SIZE: "25", MESSAGING_PROVIDER_TIMEOUT_MS: "2000" };
    const first = await serve(db, env);
    await putMockConfig(first.url, { latency_ms: 30 });

    const acknowledged: string[] = [];
    let killed = false;
    const sending = (async () => {
      for (let sent = 0; sent < MESSAGES && !killed; sent += WAVE) {
        const ids = await Promise.all(Array.from({ length: Math.min(WAVE, MESSAGES - sent) }, () => sendSms(first.url)));
        for (const id of ids) if (id !== undefined) acknowledged.push(id);
      }
    })();

    // Kill once delivery is well under way and a batch is in the provider's hands; for up to 3 s more, aim for
    // the narrow uncertain window: the provider has accepted a message whose result is not written yet.
    await waitUntil("100 messages sent", async () => (await db.count("messages WHERE status = 'sent'")) >= 100, 20_000, 5);
    const aimUntil = Date.now() + 3000;
    await waitUntil(
      "a batch in the provider's hands",
      async () => (await db.count("messages WHERE status = 'sending'")) > 0 && ((await acceptedUnrecorded(db)) > 0 || Date.now() > aimUntil),
      20_000,
      1,
    );
    process.kill(first.pid, "SIGKILL");
    killed = true;
    await first.exited();
    await sending;
    // A statement the dead process had already sent still runs to its commit: count only once none is left.
    await waitUntil(
      "the killed process's statements to end",
      async () => (await db.count("pg_stat_activity WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()")) === 0,
      10_000,
      20,
    );
    const sendingAtKill = await db.count("messages WHERE status = 'sending'");
    const heldAtKill = await db.count("messages WHERE run_at IS NOT NULL AND locked_by IS NOT NULL");
    const unsentAtKill = await db.count("messages WHERE status <> 'sent'");
    const acceptedAtKill = await acceptedUnrecorded(db);
    expect(unsentAtKill).toBeGreaterThan(0); // the kill did land mid-stream

    // The killed process's claims are free once it is proved gone: its lock went with its session, and it has
    // been unseen for the takeover bound (5 s). Every message is sent within 10 s of the restart.
    const restartedAt = Date.now();
    const second = await serve(db, env);
    await waitUntil("every job final", async () => (await db.count("messages WHERE run_at IS NOT NULL")) === 0, 10_000 - (Date.now() - restartedAt), 100);

    const messages = await db.sql<{ id: string; status: string; provider_message_id: string | null }[]>`
      SELECT id::text AS id, status, provider_message_id FROM messages ORDER BY id`;
    const ledger = await db.sql<{ idempotency_key: string; provider_message_id: string; calls: number }[]>`
      SELECT idempotency_key, provider_message_id, calls FROM mock_provider_sends`;

    // No loss: every acknowledged message exists and every message that exists (acknowledged or committed
    // while its client's connection died) ended sent.
    const ids = new Set(messages.map((m) => m.id));
    expect(acknowledged.length).toBeGreaterThan(0);
    expect(acknowledged.filter((id) => !ids.has(id))).toEqual([]);
    expect(messages.filter((m) => m.status !== "sent")).toEqual([]);

    // No double send: one acceptance per message, under its key, with the id the message recorded.
    const byKey = new Map(ledger.map((row) => [row.idempotency_key, row]));
    expect(ledger.length).toBe(messages.length);
    expect(messages.filter((m) => byKey.get(keyOf(m.id))?.provider_message_id !== m.provider_message_id)).toEqual([]);

    // The API tells the same story as the tables.
    for (const id of acknowledged.slice(0, 10)) {
      const body = (await (await fetch(`${second.url}/api/messages/${id}`)).json()) as Record<string, unknown>;
      expect(body).toMatchObject({ id, status: "sent", provider: "sms-mms", provider_message_id: byKey.get(keyOf(id))!.provider_message_id });
    }

    // Every message left in `sending` was claimed by the dead process: the restart retried it as uncertain.
    const uncertain = await scrapeMetric(second.url, "messaging_delivery_uncertain_total");
    const repeated = ledger.filter((row) => row.calls > 1).length;
    expect(uncertain).toBeGreaterThanOrEqual(sendingAtKill);
    expect(uncertain).toBeLessThanOrEqual(heldAtKill);
    // The provider was asked again for exactly the messages it had accepted before the kill without the result
    // being written, and answered each with its first acceptance.
    expect(repeated).toBe(acceptedAtKill);
    console.info(
      `crash-safety: ${acknowledged.length} acknowledged, ${messages.length} stored; at the kill ${unsentAtKill} not sent, ` +
        `${sendingAtKill} sending, ${heldAtKill} jobs held, ${acceptedAtKill} accepted by the provider without the result written; after the restart ${uncertain} uncertain retries, ` +
        `${repeated} keys the provider was asked for twice (accepted once)`,
    );
    expect(await second.stop()).toBe(0);
  }, 60_000);
});

describe("serve stopped gracefully mid-delivery", () => {
  test.concurrent("SIGTERM gives claimed jobs back, due at once, and a restart delivers them without waiting for a lease", async () => {
    const db = await freshDatabase();
    // A provider slower than the shutdown timeout, and a lease far longer than the test allows for the restart.
    const env = {
      MESSAGING_DELIVERY_WORKERS: "2",
      MESSAGING_SHUTDOWN_TIMEOUT_MS: "500",
      MESSAGING_PROVIDER_TIMEOUT_MS: "10000",
      MESSAGING_DELIVERY_LEASE_MS: "25000",
    };
    await prepareDatabase(db, { latency_ms: 3000 });
    // Accepted by an API-only process first: sent to a delivering one, the messages that arrive while its two
    // workers wait on the provider would stay queued, and the batch in flight would never be all twenty.
    const api = await serve(db, { ...env, MESSAGING_DELIVERY_WORKERS: "0" });
    const ids = await Promise.all(Array.from({ length: 20 }, () => sendSms(api.url)));
    expect(ids.filter((id) => id === undefined)).toEqual([]);
    expect(await api.stop()).toBe(0);

    const first = await serve(db, env);
    await waitUntil("all 20 in the provider's hands", async () => (await db.count("messages WHERE status = 'sending'")) === 20, 10_000);
    expect(await first.stop()).toBe(0);
    const jobs = await db.sql<{ locked_by: string | null; due: boolean }[]>`
      SELECT locked_by, run_at <= now() AS due FROM messages WHERE run_at IS NOT NULL`;
    expect(jobs.length).toBe(20);
    expect(jobs.filter((j) => j.locked_by !== null || !j.due)).toEqual([]);

    // The provider is fast again by the restart, so only a lease could make the delivery slow.
    await db.sql`UPDATE runtime_settings SET value = jsonb_set(value, '{latency_ms}', '0') WHERE name = 'provider.mock'`;
    const restartedAt = Date.now();
    const second = await serve(db, env);
    await waitUntil("the released jobs delivered", async () => (await db.count("messages WHERE run_at IS NOT NULL")) === 0, 10_000);
    const elapsed = Date.now() - restartedAt;
    expect(await db.count("messages WHERE status = 'sent'")).toBe(20);
    expect(await db.count("mock_provider_sends WHERE calls = 1")).toBe(20);
    expect(await scrapeMetric(second.url, "messaging_delivery_uncertain_total")).toBe(0); // released, not expired
    expect(elapsed).toBeLessThan(10_000); // the lease is 25 s
    console.info(`graceful stop: the restart delivered the 20 released messages ${elapsed} ms after it was started`);
    expect(await second.stop()).toBe(0);
  }, 40_000);
});

describe("a slow provider call is not taken for a dead worker", () => {
  test.concurrent("a 12 s call (six takeover bounds) is never handed to a second process while its worker lives", async () => {
    const db = await freshDatabase();
    const env = { MESSAGING_PROVIDER_TIMEOUT_MS: "30000", MESSAGING_DELIVERY_TAKEOVER_MS: "2000", MESSAGING_DELIVERY_POLL_MS: "100" };
    await prepareDatabase(db, { latency_ms: 12_000 });
    const a = await serve(db, env);
    const b = await serve(db, env);
    const ids = await Promise.all(Array.from({ length: 5 }, () => sendSms(a.url)));
    expect(ids.filter((id) => id === undefined)).toEqual([]);
    await waitUntil("the messages claimed", async () => (await db.count("messages WHERE status = 'sending'")) === 5, 5_000);
    await Bun.sleep(8_000); // four bounds past the claim, the calls still running
    expect(await db.count("delivery_attempts")).toBe(0);
    expect(await db.count("messages WHERE run_at IS NOT NULL AND locked_by IS NOT NULL")).toBe(5);
    await waitUntil("the slow calls answered and written", async () => (await db.count("messages WHERE status = 'sent'")) === 5, 15_000, 100);
    expect(await db.count("mock_provider_sends WHERE calls = 1")).toBe(5);
    expect(await db.count("delivery_attempts")).toBe(5);
    expect((await scrapeMetric(a.url, "messaging_delivery_uncertain_total")) + (await scrapeMetric(b.url, "messaging_delivery_uncertain_total"))).toBe(0);
  }, 60_000);
});
