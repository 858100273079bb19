// Events to the client app (SPEC §10, issue 17) through the compiled binary against PostgreSQL, with real HTTP
// receivers on loopback (MESSAGING_EGRESS_ALLOW_HTTP and SSRF_ALLOWLIST=127.0.0.1, as in the provider tests).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { ensureBinary, killAll, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { deliveryDatabase, type DeliveryDatabase, waitUntil } from "../delivery/binary-fixture.ts";
import { metricValue } from "../helpers/messaging.ts";
import { type Answer, type Hit, type Receiver, startReceiver, verifies } from "./receiver.ts";

const MASTER_KEYS = `k1:${randomBytes(32).toString("base64")}`;

function eventEnv(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    MESSAGING_MASTER_KEYS: MASTER_KEYS,
    SSRF_ALLOWLIST: "127.0.0.1",
    MESSAGING_EGRESS_ALLOW_HTTP: "true",
    API_RATE_LIMIT_PER_IP_PER_MIN: "10000000",
    API_RATE_LIMIT_PER_SENDER_PER_MIN: "10000000",
    MESSAGING_DELIVERY_POLL_MS: "50",
    // A job the killed instance held is claimed again within seconds (the lease is at least twice this plus 5 s).
    MESSAGING_PROVIDER_TIMEOUT_MS: "1000",
    MESSAGING_DELIVERY_LEASE_MS: "7000",
    MESSAGING_EVENT_POLL_MS: "50",
    MESSAGING_EVENT_BACKOFF_BASE_MS: "400",
    MESSAGING_EVENT_BACKOFF_CAP_MS: "1000",
    MESSAGING_EVENT_TIMEOUT_MS: "1000",
    ...extra,
  };
}

const processes: ServeProcess[] = [];
const receivers: Receiver[] = [];

async function api(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

let pairs = 0;
/** A fresh pair of numbers, so each test's messages are its own. */
function pair(): { ours: string; theirs: string } {
  pairs += 1;
  const n = String(pairs).padStart(4, "0");
  return { ours: `+1202555${n}`, theirs: `+1303555${n}` };
}

async function sendSms(base: string, from: string, to: string, body = "hello"): Promise<{ status: number; id?: string }> {
  const res = await api(base, "POST", "/api/messages/sms", { from, to, type: "sms", body, attachments: null, timestamp: "2024-11-01T12:00:00Z" });
  return { status: res.status, id: res.json?.id };
}

async function inbound(base: string, from: string, to: string, body: string): Promise<string> {
  const res = await api(base, "POST", "/api/webhooks/sms", {
    from, to, type: "sms", body, attachments: null, timestamp: "2024-11-01T12:00:00Z", messaging_provider_id: `p-${crypto.randomUUID()}`,
  });
  expect(res.status).toBe(202);
  return res.json.id;
}

async function addEndpoint(base: string, url: string, events: string[]): Promise<{ id: string; secret: string }> {
  const res = await api(base, "POST", "/api/event-endpoints", { url, events });
  expect(res.status).toBe(201);
  return res.json;
}

function receiver(answer: (n: number, hit: Hit) => Answer): Receiver {
  const r = startReceiver(answer);
  receivers.push(r);
  return r;
}

/** Every event of the feed, walking it with `limit` per page. */
async function readFeed(base: string, limit = 1000): Promise<{ items: Hit["body"][]; pages: number; last: string }> {
  const items: Hit["body"][] = [];
  let after: string | undefined;
  let pages = 0;
  for (;;) {
    const res = await api(base, "GET", `/api/events?limit=${limit}${after ? `&after=${after}` : ""}`);
    expect(res.status).toBe(200);
    pages += 1;
    if (res.json.items.length === 0) {
      if (after !== undefined) expect(res.json.next_cursor).toBe(after);
      return { items, pages, last: res.json.next_cursor };
    }
    items.push(...res.json.items);
    after = res.json.next_cursor;
  }
}

beforeAll(async () => {
  await ensureBinary();
  crash = crashWithEventsPending();
  crash.catch(() => {}); // its test awaits it and reports the failure; none may end the file before then
}, 120_000);
afterAll(() => {
  killAll(processes);
  for (const r of receivers) r.close();
});

describe("events through the binary", () => {
  let db: DeliveryDatabase;
  let serve: ServeProcess;

  beforeAll(async () => {
    db = await deliveryDatabase();
    serve = await startServe({ args: ["--migrate"], env: eventEnv(db.url) });
    processes.push(serve);
  }, 60_000);

  afterAll(async () => {
    await serve?.stop();
    await db?.close();
  });

  test("every event type arrives once, signed with the secret shown at creation, its data the message item", async () => {
    const r = receiver(() => 200);
    const endpoint = await addEndpoint(serve.url, r.url, ["*"]);
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    const listed = await api(serve.url, "GET", "/api/event-endpoints");
    expect(JSON.stringify(listed.json)).not.toContain(endpoint.secret);

    // queued, sent, delivered: the mock reports every accepted message delivered.
    await api(serve.url, "PUT", "/api/provider/mock/config", { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null, delivery_report_pct: 100 });
    const a = pair();
    const delivered = (await sendSms(serve.url, a.ours, a.theirs, "first")).id!;
    await waitUntil("queued, sent, delivered", async () => r.forMessage(delivered).length >= 3, 15_000);
    await api(serve.url, "PUT", "/api/provider/mock/config", { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null, delivery_report_pct: 0 });

    // undelivered and failed: a carrier's reports after the acceptance.
    const b = pair();
    const undelivered = (await sendSms(serve.url, b.ours, b.theirs, "second")).id!;
    const failed = (await sendSms(serve.url, b.ours, b.theirs, "third")).id!;
    await waitUntil("both sent", async () => r.forMessage(undelivered).length >= 2 && r.forMessage(failed).length >= 2, 15_000);
    expect((await api(serve.url, "POST", "/api/provider/mock/reports", { message_id: undelivered, status: "undelivered", error_code: "30003" })).status).toBe(202);
    expect((await api(serve.url, "POST", "/api/provider/mock/reports", { message_id: failed, status: "failed", error_code: "30008" })).status).toBe(202);

    // received, opted_out, opted_in: a person texts STOP, then START.
    const c = pair();
    const stop = await inbound(serve.url, c.theirs, c.ours, "STOP");
    const start = await inbound(serve.url, c.theirs, c.ours, "start");
    const recipient = (h: Hit) => h.body.type.startsWith("recipient.") && h.body.data.to === c.theirs;
    await waitUntil("every event", async () =>
      r.forMessage(undelivered).length >= 3 && r.forMessage(failed).length >= 3 && r.forMessage(stop).length >= 1 && r.forMessage(start).length >= 1 && r.hits.filter(recipient).length >= 2, 15_000);
    await Bun.sleep(300); // anything sent twice would arrive by now

    const types = (id: string) => r.forMessage(id).map((h) => `${h.body.sequence}:${h.body.type}`);
    expect(types(delivered)).toEqual(["1:message.queued", "2:message.sent", "3:message.delivered"]);
    expect(types(undelivered)).toEqual(["1:message.queued", "2:message.sent", "3:message.undelivered"]);
    expect(types(failed)).toEqual(["1:message.queued", "2:message.sent", "3:message.failed"]);
    expect(types(stop)).toEqual(["1:message.received"]);
    expect(r.hits.filter(recipient).map((h) => `${h.body.sequence}:${h.body.type}`)).toEqual(["1:recipient.opted_out", "2:recipient.opted_in"]);
    expect(r.hits.filter(recipient)[0]!.body.data).toMatchObject({ from: c.ours, to: c.theirs, source: "inbound", reason: "STOP", message_id: stop });

    const ids = r.hits.map((h) => h.body.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const hit of r.hits) {
      expect(hit.body.id).toMatch(/^evt_[0-9a-f]{32}$/);
      expect(hit.headers.get("x-messaging-event-id")).toBe(hit.body.id);
      expect(hit.headers.get("content-type")).toBe("application/json");
      expect(hit.headers.get("user-agent")).toMatch(/^messaging\/\d+\.\d+\.\d+/);
      expect(verifies(hit, endpoint.secret)).toBe(true);
      expect(verifies(hit, "whsec_not-the-secret")).toBe(false);
    }

    // The last event's data is the message item of GET /api/messages/{id}, without attempts, plus the reason.
    for (const id of [delivered, undelivered, failed, stop]) {
      const { attempts, ...item } = (await api(serve.url, "GET", `/api/messages/${id}`)).json;
      expect(Array.isArray(attempts)).toBe(true);
      const last = r.forMessage(id).at(-1)!.body.data;
      const { reason, ...data } = last;
      expect(data).toEqual(item);
      if (id === undelivered) expect(reason).toBe("30003");
      else if (id === failed) expect(reason).toBe("30008");
      else expect(reason).toBeUndefined();
    }
    // An earlier event keeps the status it announced.
    expect(r.forMessage(delivered)[0]!.body.data).toMatchObject({ status: "queued", provider: null, body: "first" });

    const metrics = await (await fetch(`${serve.url}/metrics`)).text();
    expect(metricValue(metrics, "messaging_events_written_total", { type: "message.delivered" })).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, "messaging_event_deliveries_total", { outcome: "delivered" })).toBeGreaterThanOrEqual(r.hits.length);
    expect(metrics).not.toContain(r.url);
    await api(serve.url, "DELETE", `/api/event-endpoints/${endpoint.id}`);
  }, 60_000);

  test("a receiver answering 500 twice then 200 gets the event three times, with backoff between", async () => {
    const r = receiver((n) => (n <= 2 ? 500 : 200));
    const endpoint = await addEndpoint(serve.url, r.url, ["message.received"]);
    const c = pair();
    const id = await inbound(serve.url, c.theirs, c.ours, "are you there?");
    await waitUntil("three tries", async () => r.hits.length >= 3, 15_000);
    await Bun.sleep(600);
    expect(r.hits.length).toBe(3);
    expect(new Set(r.hits.map((h) => h.body.id)).size).toBe(1);
    expect(r.hits[0]!.body.data.id).toBe(id);
    // Half of each backoff ceiling is always waited: at least 200 ms, then 400 ms (base 400 ms, doubling).
    expect(r.hits[1]!.at - r.hits[0]!.at).toBeGreaterThanOrEqual(190);
    expect(r.hits[2]!.at - r.hits[1]!.at).toBeGreaterThanOrEqual(390);
    const listed = (await api(serve.url, "GET", "/api/event-endpoints")).json.items.find((e: { id: string }) => e.id === endpoint.id);
    expect(listed).toMatchObject({ disabled_at: null, failing_since: null, pending: 0, last_delivery: { outcome: "delivered", status_code: 200 } });
    await api(serve.url, "DELETE", `/api/event-endpoints/${endpoint.id}`);
  }, 30_000);

  test("410 Gone disables the endpoint at once; its events wait in the feed, and enable delivers them", async () => {
    let gone = true;
    const r = receiver(() => (gone ? 410 : 200));
    const endpoint = await addEndpoint(serve.url, r.url, ["message.received"]);
    const c = pair();
    const first = await inbound(serve.url, c.theirs, c.ours, "one");
    const listed = async () => (await api(serve.url, "GET", "/api/event-endpoints")).json.items.find((e: { id: string }) => e.id === endpoint.id);
    await waitUntil("disabled", async () => (await listed()).disabled_at !== null, 15_000);
    expect((await listed()).disabled_reason).toContain("410");
    const second = await inbound(serve.url, c.theirs, c.ours, "two");
    await Bun.sleep(800);
    expect(r.hits.length).toBe(1);
    const feed = await readFeed(serve.url);
    expect(feed.items.filter((e) => e.type === "message.received" && [first, second].includes(e.data.id))).toHaveLength(2);

    gone = false;
    const enabled = await api(serve.url, "POST", `/api/event-endpoints/${endpoint.id}/enable`);
    expect(enabled.status).toBe(200);
    expect(enabled.json.disabled_at).toBeNull();
    await waitUntil("both delivered after enable", async () => r.forMessage(first).length >= 2 && r.forMessage(second).length >= 1, 15_000);
    expect((await api(serve.url, "POST", "/api/event-endpoints/999999/enable")).status).toBe(404);
    await api(serve.url, "DELETE", `/api/event-endpoints/${endpoint.id}`);
  }, 30_000);

  test("a URL outside the allowlist is refused at registration, nothing stored, and never contacted", async () => {
    const r = receiver(() => 200);
    for (const url of [r.url.replace("127.0.0.1", "localhost"), `http://127.0.0.2:${r.port}/hook`, "http://169.254.169.254/latest/meta-data"]) {
      const res = await api(serve.url, "POST", "/api/event-endpoints", { url, events: ["*"] });
      expect(res.status).toBe(422);
      expect(res.json.code).toBe("url_not_allowed");
      expect(res.json.message).toContain("egress guard");
    }
    const bad = await api(serve.url, "POST", "/api/event-endpoints", { url: "ftp://x", events: ["message.nope"] });
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe("validation_failed");
    const c = pair();
    await inbound(serve.url, c.theirs, c.ours, "anyone?");
    await Bun.sleep(500);
    expect(r.hits).toHaveLength(0);
    const listed = (await api(serve.url, "GET", "/api/event-endpoints")).json.items;
    expect(listed.filter((e: { url: string }) => e.url.includes(String(r.port)))).toHaveLength(0);
  }, 30_000);

  test("after a secret rotation both secrets verify, each on its own, during the overlap", async () => {
    const r = receiver(() => 200);
    const endpoint = await addEndpoint(serve.url, r.url, ["message.received"]);
    const rotated = await api(serve.url, "POST", `/api/event-endpoints/${endpoint.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.json.secret).toMatch(/^whsec_/);
    expect(rotated.json.secret).not.toBe(endpoint.secret);
    expect(Date.parse(rotated.json.previous_secret_expires_at) - Date.now()).toBeGreaterThan(23 * 3_600_000);
    const c = pair();
    await inbound(serve.url, c.theirs, c.ours, "rotated");
    await waitUntil("delivered", async () => r.hits.length >= 1, 15_000);
    const hit = r.hits[0]!;
    expect(hit.headers.get("x-messaging-signature")!.match(/v1=/g)).toHaveLength(2);
    expect(verifies(hit, endpoint.secret)).toBe(true);
    expect(verifies(hit, rotated.json.secret)).toBe(true);
    await api(serve.url, "DELETE", `/api/event-endpoints/${endpoint.id}`);
    expect((await api(serve.url, "DELETE", `/api/event-endpoints/${endpoint.id}`)).status).toBe(404);
  }, 30_000);

  test("the pull feed returns every event in commit order across pages, with an empty page at the end", async () => {
    const c = pair();
    for (let i = 0; i < 5; i++) await sendSms(serve.url, c.ours, c.theirs, `feed ${i}`);
    await waitUntil("all sent", async () => (await db.count(`messages WHERE from_addr = '${c.ours}' AND status = 'sent'`)) === 5, 15_000);
    const whole = await readFeed(serve.url);
    const paged = await readFeed(serve.url, 3);
    expect(paged.items.map((e) => e.id)).toEqual(whole.items.map((e) => e.id));
    expect(paged.pages).toBeGreaterThan(3);
    const rows = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events`;
    expect(whole.items).toHaveLength(rows[0]!.n);
    // Per message, its events come in sequence order.
    const seen = new Map<string, number>();
    for (const e of whole.items.filter((e) => e.type.startsWith("message."))) {
      expect(e.sequence).toBe((seen.get(e.data.id) ?? 0) + 1);
      seen.set(e.data.id, e.sequence);
    }
    const only = await api(serve.url, "GET", "/api/events?types=message.status&limit=1000");
    expect(only.json.items.length).toBeGreaterThan(0);
    expect(only.json.items.every((e: { type: string }) => e.type.startsWith("message.") && e.type !== "message.received")).toBe(true);
    // Nothing new: an empty page that keeps the cursor.
    const empty = await api(serve.url, "GET", `/api/events?after=${whole.last}`);
    expect(empty.json).toEqual({ items: [], next_cursor: whole.last });
    expect((await api(serve.url, "GET", "/api/events?types=message.nope")).status).toBe(400);
    expect((await api(serve.url, "GET", "/api/events?after=bm90LWEtY3Vyc29y")).status).toBe(400);
    expect((await api(serve.url, "GET", "/api/events?limit=0")).status).toBe(400);
  }, 30_000);

  test("messaging events endpoints add | list | rotate-secret | remove, the secret printed once", async () => {
    const r = receiver(() => 200);
    const env = { DATABASE_URL: db.url, MESSAGING_MASTER_KEYS: MASTER_KEYS, SSRF_ALLOWLIST: "127.0.0.1", MESSAGING_EGRESS_ALLOW_HTTP: "true" };
    const added = await runBinary(["events", "endpoints", "add", r.url, "--events", "message.received", "--description", "cli"], { env });
    expect(added.exitCode).toBe(0);
    const secret = added.stdout.trim();
    expect(secret).toMatch(/^whsec_/);
    expect(added.stderr).toContain("shown this once");
    const list = await runBinary(["events", "endpoints", "list", "--json"], { env });
    const mine = (JSON.parse(list.stdout) as { id: string; url: string }[]).find((e) => e.url === r.url)!;
    expect(list.stdout).not.toContain(secret);
    const c = pair();
    await inbound(serve.url, c.theirs, c.ours, "via cli");
    await waitUntil("delivered to the CLI's endpoint", async () => r.hits.length >= 1, 15_000);
    expect(verifies(r.hits[0]!, secret)).toBe(true);
    const rotated = await runBinary(["events", "endpoints", "rotate-secret", mine.id], { env });
    expect(rotated.exitCode).toBe(0);
    expect(rotated.stdout.trim()).toMatch(/^whsec_/);
    const refused = await runBinary(["events", "endpoints", "add", "http://10.1.2.3/hook"], { env });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain("egress guard");
    expect((await runBinary(["events", "endpoints", "remove", mine.id], { env })).exitCode).toBe(0);
    expect((await runBinary(["events", "endpoints", "remove", mine.id], { env })).exitCode).toBe(1);
  }, 60_000);
});

/**
 * A crash and a restart with events pending: what the test below checks. It spends most of its ten seconds waiting
 * on the events' retry backoff, so it starts with the file (beforeAll) and runs beside the other tests on a
 * database, a receiver and processes of its own; its test awaits what it saw.
 */
async function crashWithEventsPending() {
  const db = await deliveryDatabase();
  let down = true;
  const r = receiver(() => (down ? 503 : 200));
  try {
    const first = await startServe({ args: ["--migrate"], env: eventEnv(db.url) });
    processes.push(first);
    await addEndpoint(first.url, r.url, ["*"]);
    // A send that rolls back after its message was inserted: a trigger of the test's own fails it after the insert.
    await db.sql.unsafe(`
      CREATE FUNCTION test_refuse_job() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.body = 'ROLLBACK ME' THEN RAISE EXCEPTION 'refused by the test'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_refuse_job AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION test_refuse_job();`);
    const c = pair();
    const rolledBack = await sendSms(first.url, c.ours, c.theirs, "ROLLBACK ME");
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await sendSms(first.url, c.ours, c.theirs, `crash ${i}`)).id!);
    await waitUntil("some tries failed", async () => r.hits.length >= 5, 15_000);
    process.kill(first.pid, "SIGKILL");
    await first.exited();

    down = false;
    const second = await startServe({ env: eventEnv(db.url) });
    processes.push(second);
    const expected = async () => (await readFeed(second.url)).items;
    await waitUntil("all sent", async () => (await db.count(`messages WHERE from_addr = '${c.ours}' AND status = 'sent'`)) === 20, 30_000);
    await waitUntil("every event delivered", async () => {
      const got = new Set(r.hits.filter((h) => h.headers.get("x-messaging-signature")).map((h) => h.body.id));
      return (await expected()).every((e) => got.has(e.id));
    }, 30_000);
    const seen = { rolledBackStatus: rolledBack.status, ids, feed: await expected(), hits: [...r.hits], rolledBackRows: await db.count("messages WHERE body = 'ROLLBACK ME'") };
    await second.stop();
    return seen;
  } finally {
    await db.close();
  }
}

let crash: ReturnType<typeof crashWithEventsPending>;

describe("events survive kill -9", () => {
  test("every event of a crashed instance arrives after a restart, none missing; a rolled-back send writes none", async () => {
    const { rolledBackStatus, ids, feed, hits, rolledBackRows } = await crash;
    expect(rolledBackStatus).not.toBe(202);
    for (const id of ids) {
      expect(feed.filter((e) => e.data.id === id).map((e) => e.type)).toEqual(["message.queued", "message.sent"]);
    }
    expect(feed.some((e) => e.data.body === "ROLLBACK ME")).toBe(false);
    expect(hits.some((h) => h.body.data.body === "ROLLBACK ME")).toBe(false);
    expect(rolledBackRows).toBe(0);
  }, 120_000);
});
