/**
 * Fixtures for the messaging routes: valid request bodies to override field by field, unique addresses so
 * tests sharing one database never land in each other's conversations, row counts, and metric samples.
 *
 *   const res = await post(t.app, "/api/messages/sms", smsSend({ from: phone(), to: phone() }));
 *   expect(await countRows(t.database, "messages")).toBe(1);
 */
import type { DatabaseHandle } from "../../src/db/client.ts";
import type { Config } from "../../src/config/index.ts";
import type { NewMessage } from "../../src/modules/messages/repository.ts";
import { newMessage } from "../../src/modules/messages/write.ts";
import { request, type TestResponse } from "./app.ts";

type Handler = { handle(request: Request): Promise<Response> | Response };

/** Limits high enough that a test sending hundreds of requests through one `app.handle` is never throttled. */
export const UNLIMITED: Partial<Config> = { rateLimitPerIpPerMin: 1_000_000, rateLimitPerSenderPerMin: 1_000_000 };

let phoneSeq = 0;
let emailSeq = 0;
const run = Math.floor(Math.random() * 9000) + 1000;

/** A phone number no other call in this process returns (`+1201` + run + sequence, 12 digits after the +). */
export function phone(): string {
  phoneSeq += 1;
  return `+1201${run}${String(phoneSeq).padStart(3, "0")}`;
}

/** An email address no other call in this process returns. */
export function email(local = "user"): string {
  emailSeq += 1;
  return `${local}${run}x${emailSeq}@example.com`;
}

export const TS = "2024-11-01T14:00:00Z";

export function smsSend(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { from: phone(), to: phone(), type: "sms", body: "hello", attachments: null, timestamp: TS, ...overrides };
}

export function emailSend(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { from: email("from"), to: email("to"), body: "<p>hello</p>", attachments: [], timestamp: TS, ...overrides };
}

export function smsWebhook(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...smsSend(), messaging_provider_id: `prov-${crypto.randomUUID()}`, ...overrides };
}

export function emailWebhook(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...emailSend(), xillio_id: `xil-${crypto.randomUUID()}`, ...overrides };
}

/** POSTs a JSON body, with extra headers such as Idempotency-Key. */
export function post(app: Handler, path: string, body: unknown, headers: Record<string, string> = {}): Promise<TestResponse> {
  return request(app, "POST", path, { body, headers });
}

/** `GET`, with the JSON body parsed. */
export function get(app: Handler, path: string, headers: Record<string, string> = {}): Promise<TestResponse> {
  return request(app, "GET", path, { headers });
}

const TABLES = new Set(["messages", "conversations", "idempotency_keys", "runtime_settings", "opt_outs"]);

/**
 * The delivery queue as a relation of jobs: a message is its own job while its `run_at` is set (delivery/jobs.ts),
 * so tests that count or read jobs by `message_id` read this instead of a table.
 */
export const JOBS = "(SELECT id AS message_id, run_at, attempts, locked_by, locked_until FROM messages WHERE run_at IS NOT NULL) jobs";

/** Jobs in the delivery queue, optionally filtered by a parameterized `where` clause (`"message_id = $1"`). */
export async function countJobs(database: DatabaseHandle, where = "true", params: unknown[] = []): Promise<number> {
  const [row] = await database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${JOBS} WHERE ${where}`, params);
  return row!.n;
}

/** Rows of a table, optionally filtered by a parameterized `where` clause (`"conversation_id = $1"`). */
export async function countRows(database: DatabaseHandle, table: string, where = "true", params: unknown[] = []): Promise<number> {
  if (!TABLES.has(table)) throw new Error(`countRows: unknown table ${table}`);
  const [row] = await database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${where}`, params);
  return row!.n;
}

/**
 * The sum of a Prometheus sample's values over lines whose labels include every given label exactly
 * (`metricValue(text, "messaging_messages_accepted_total", { channel: "sms" })`); 0 when no line matches.
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** Fires `n` requests at once and waits for all of them. */
export function concurrently<T>(n: number, make: (i: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => make(i)));
}

/** An outbound SMS as the send path hands it to the repository and the batcher (to +18045550000). */
export function outboundRow(from: string, body: string): NewMessage {
  return newMessage({ channel: "sms", from, to: "+18045550000", body, attachments: [], timestamp: TS }, "outbound", null);
}
