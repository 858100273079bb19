/**
 * The compiled binary delivering through the mock provider, for the crash and multi-instance tests: the
 * environment they share, a direct SQL connection to read what the processes wrote, and small polling helpers.
 *
 *   const db = await deliveryDatabase();                      // fresh, migrated PostgreSQL database + postgres.js client
 *   const s = await startServe({ args: ["--migrate"], env: deliveryEnv(db.url, { MESSAGING_DELIVERY_WORKERS: "2" }) });
 *   await putMockConfig(s.url, { latency_ms: 30 });
 *   const id = await sendSms(s.url);                          // the id of a 202, or undefined
 *   await waitUntil("all sent", async () => (await db.count("messages WHERE status <> 'sent'")) === 0, 30_000);
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { runBinary } from "../helpers/binary.ts";
import { createMigratedTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { metricValue } from "../helpers/messaging.ts";
import { FAKE_ACCOUNT_SID } from "../providers/twilio-fake.ts";

/**
 * What every process of these tests runs with. The provider timeout is short so the lease is not raised far past
 * the MESSAGING_DELIVERY_LEASE_MS asked for (the dispatcher keeps it at least twice the timeout plus 5 s).
 */
export function deliveryEnv(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    MESSAGING_AUTH: "off",
    API_RATE_LIMIT_PER_IP_PER_MIN: "10000000",
    API_RATE_LIMIT_PER_SENDER_PER_MIN: "10000000",
    MESSAGING_PROVIDER_TIMEOUT_MS: "1000",
    MESSAGING_DELIVERY_LEASE_MS: "7000",
    MESSAGING_DELIVERY_POLL_MS: "100",
    ...extra,
  };
}

export interface DeliveryDatabase extends TestDatabase {
  sql: postgres.Sql;
  /** `SELECT count(*) FROM <from>`, e.g. `count("messages WHERE status = 'sent'")`. */
  count(from: string): Promise<number>;
  close(): Promise<void>;
}

/** A new database with every migration applied (a copy of the migrated template); the binaries' --migrate finds nothing to do. */
export async function deliveryDatabase(): Promise<DeliveryDatabase> {
  const pg = await createMigratedTestDatabase();
  const sql = postgres(pg.url, { max: 2, onnotice: () => {} });
  return {
    ...pg,
    sql,
    count: async (from) => {
      const [row] = await sql.unsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM ${from}`);
      return row!.n;
    },
    close: async () => {
      await sql.end({ timeout: 5 });
      await pg.drop();
    },
  };
}

/** The mock's fault injection: none, no delivery reports (messages stay `sent`), and the given overrides. */
export function mockConfig(overrides: { latency_ms: number }): Record<string, number | null> {
  return { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null, delivery_report_pct: 0, ...overrides };
}

export async function putMockConfig(url: string, overrides: { latency_ms: number }): Promise<void> {
  const res = await fetch(`${url}/api/provider/mock/config`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(mockConfig(overrides)),
  });
  if (res.status !== 200) throw new Error(`PUT /api/provider/mock/config answered ${res.status}: ${await res.text()}`);
}

/**
 * Migrates the database with the binary and stores the mock's config before any process starts, so its workers'
 * very first claim reads it. (A PUT to a running process races a claim that read the config just before.)
 */
export async function prepareDatabase(db: DeliveryDatabase, overrides: { latency_ms: number }): Promise<void> {
  const migrated = await runBinary(["migrate", "up"], { env: { DATABASE_URL: db.url } });
  if (migrated.exitCode !== 0) throw new Error(`migrate up failed:\n${migrated.stderr}`);
  await db.sql`
    INSERT INTO runtime_settings (name, value) VALUES ('provider.mock', ${db.sql.json(mockConfig(overrides))})
    ON CONFLICT (name) DO UPDATE SET value = excluded.value`;
}

let sequence = 0;

/**
 * One SMS send with its own pair of numbers. Resolves the message id of a 202; undefined when the request failed
 * or was answered otherwise (e.g. the connection was reset by a kill), i.e. when it was not acknowledged.
 */
/** Sends one SMS; `from` defaults to a fresh number (a route of mocks owns every sender). */
export async function sendSms(url: string, from?: string): Promise<string | undefined> {
  sequence += 1;
  const n = String(sequence).padStart(6, "0");
  try {
    const res = await fetch(`${url}/api/messages/sms`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ from: from ?? `+1202${n}1`, to: `+1303${n}2`, type: "sms", body: `crash ${n}`, attachments: null, timestamp: "2024-11-01T12:00:00Z" }),
    });
    if (res.status !== 202) return undefined;
    return ((await res.json()) as { id: string }).id;
  } catch {
    return undefined;
  }
}

/** A counter's value in the process's /metrics. */
export async function scrapeMetric(url: string, name: string): Promise<number> {
  const res = await fetch(`${url}/metrics`);
  return metricValue(await res.text(), name);
}

/** Polls `probe` until it is true; throws with `what` after `ms`. */
export async function waitUntil(what: string, probe: () => Promise<boolean>, ms: number, everyMs = 50): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(everyMs);
  }
}

/** The idempotency key the dispatcher gives the provider for a message. */
export const keyOf = (messageId: string) => `messaging-msg-${messageId}`;

/**
 * Writes `messaging.toml` in `dir` for a binary that sends SMS and MMS through the fake Twilio at `baseUrl`
 * (provider `twilio-test`, loopback allowed over http) and email to a mock (`outbox`); returns its path.
 */
/** The number the fake Twilio provider of `writeFakeTwilioConfig` owns: the only sender its route accepts. */
export const FAKE_TWILIO_SENDER = "+15005550006";

export function writeFakeTwilioConfig(dir: string, baseUrl: string): string {
  const path = join(dir, "messaging.toml");
  writeFileSync(
    path,
    [
      `ssrf_allowlist = ["127.0.0.1"]`,
      `egress_allow_http = true`,
      `[[providers]]`,
      `name = "twilio-test"`,
      `kind = "twilio"`,
      `account_sid = "${FAKE_ACCOUNT_SID}"`,
      `senders = ["${FAKE_TWILIO_SENDER}"]`,
      `base_url = "${baseUrl}"`,
      `[[providers]]`,
      `name = "outbox"`,
      `kind = "mock"`,
      `[routes]`,
      `sms = ["twilio-test"]`,
      `mms = ["twilio-test"]`,
      `email = ["outbox"]`,
    ].join("\n"),
  );
  return path;
}
