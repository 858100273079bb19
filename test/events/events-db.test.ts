// The event outbox in the database (SPEC §10) on both databases, through the app: what the triggers write for
// scheduling and rollbacks, the endpoint rules the delivery statement applies (disable after failing too long),
// retention, the `check` item, the admin scope of the endpoint routes, and the feed order under concurrent
// transactions on PostgreSQL (a late commit, a message's events, another database's long transaction).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { migrationStatus } from "../../src/db/migrate.ts";
import { claimDeliveries, feedHeldBackSeconds, purgeEventBatch, recordDeliveries, routeEvents } from "../../src/events/deliveries.ts";
import { FEED_START, feedPage, decodeFeedCursor, encodeFeedCursor } from "../../src/events/feed.ts";
import { createApiKey } from "../../src/security/api-keys.ts";
import { eventEndpointsCheck } from "../../src/diagnostics/events.ts";
import { buildTestApp, request, type TestApp } from "../helpers/app.ts";
import { TEST_DATABASE_URL } from "../helpers/database.ts";

const sms = (from: string, to: string, extra: Record<string, unknown> = {}) => ({
  from, to, type: "sms", body: "hi", attachments: null, timestamp: "2024-11-01T12:00:00Z", ...extra,
});

describe.each(["postgres", "embedded"] as const)("events on %s", (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database: kind, config: { ssrfAllowlist: ["127.0.0.1"], egressAllowHttp: true, rateLimitPerSenderPerMin: 100000 } });
  }, 60_000);
  afterAll(() => t?.close());
  // The feed needs no worker: a committed event is in it as soon as no older transaction of the database runs.
  const all = async () => (await feedPage(t.database.sql, FEED_START, null, 1000, 64)).items;

  test("a scheduled send writes message.scheduled, its cancel message.canceled, in sequence", async () => {
    const sendAt = new Date(Date.now() + 3_600_000).toISOString();
    const sent = await request(t.app, "POST", "/api/messages/sms", { body: sms("+12025550001", "+13035550001", { send_at: sendAt }) });
    expect(sent.status).toBe(202);
    const canceled = await request(t.app, "POST", `/api/messages/${sent.json.id}/cancel`);
    expect(canceled.status).toBe(200);
    const mine = (await all()).filter((e) => e.data.id === sent.json.id);
    expect(mine.map((e) => `${e.sequence}:${e.type}:${e.data.status}`)).toEqual(["1:message.scheduled:scheduled", "2:message.canceled:canceled"]);
    expect(mine[0]!.data.send_at).toBe(canceled.json.send_at);
  });

  test("a transaction that rolls back leaves no event; the one that commits has its event", async () => {
    const before = (await all()).length;
    await t.database.sql
      .transaction(async (tx) => {
        await tx.query("INSERT INTO opt_outs (from_addr, to_addr, source, reason) VALUES ('+12025550002', '+13035550002', 'inbound', 'STOP')");
        throw new Error("roll back");
      })
      .catch(() => {});
    expect((await all()).length).toBe(before);
    await t.database.sql.query("INSERT INTO opt_outs (from_addr, to_addr, source, reason) VALUES ('+12025550002', '+13035550002', 'inbound', 'STOP')");
    const last = (await all()).at(-1)!;
    expect(last).toMatchObject({ type: "recipient.opted_out", sequence: 1, data: { from: "+12025550002", to: "+13035550002", source: "inbound" } });
  });

  test("an endpoint failing longer than the disable window is disabled by the outcome that finds it", async () => {
    const [row] = await t.database.sql.query<{ id: string }>(
      "INSERT INTO event_endpoints (url, events, failing_since) VALUES ('http://127.0.0.1:9/x', '{*}', now() - interval '4 days') RETURNING id::text AS id",
    );
    await routeEvents(t.database.sql, 10_000);
    await t.database.sql.query("INSERT INTO opt_outs (from_addr, to_addr, source, reason) VALUES ('+12025550003', '+13035550003', 'inbound', 'STOP')");
    expect((await routeEvents(t.database.sql, 10_000)).deliveries).toBe(1);
    const [claimed] = await claimDeliveries(t.database.sql, new Map([[row!.id, 5]]), "test", 10_000);
    expect(claimed).toBeDefined();
    const disabled = await recordDeliveries(
      t.database.sql,
      "test",
      [{ endpointId: row!.id, eventId: claimed!.eventId, outcome: "failed", statusCode: 500, error: "500", retryAt: new Date(), giveUp: false }],
      3 * 86_400_000,
    );
    expect(disabled).toEqual([{ id: row!.id, disabled_reason: expect.stringContaining("every delivery failed since") }]);
    // A disabled endpoint claims nothing; its delivery stays for enable.
    expect(await claimDeliveries(t.database.sql, new Map([[row!.id, 5]]), "test", 10_000)).toEqual([]);
    const context = { config: t.config, database: t.database, migrations: await migrationStatus(t.database.db), repairCounters: false };
    const report = await eventEndpointsCheck(context);
    expect(report).toContainEqual({ check: "event-endpoints", status: "warn", message: expect.stringContaining(`endpoint ${row!.id} (127.0.0.1:9) is disabled since`) });
    await t.database.sql.query("DELETE FROM event_endpoints WHERE id = $1::bigint", [row!.id]);
  });

  test("retention purges old events with their pending deliveries, and keeps the rest", async () => {
    const [row] = await t.database.sql.query<{ id: string }>("INSERT INTO event_endpoints (url, events) VALUES ('http://127.0.0.1:9/y', '{*}') RETURNING id::text AS id");
    await t.database.sql.query("INSERT INTO opt_outs (from_addr, to_addr, source, reason) VALUES ('+12025550004', '+13035550004', 'inbound', 'STOP')");
    await routeEvents(t.database.sql, 10_000);
    const total = (await all()).length;
    await t.database.sql.query("UPDATE events SET created_at = now() - interval '8 days' WHERE subject = 'recipient:+12025550004>+13035550004'");
    expect(await purgeEventBatch(t.database.sql, 7, 100)).toBe(1);
    expect((await all()).length).toBe(total - 1);
    const [left] = await t.database.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM event_deliveries WHERE endpoint_id = $1::bigint", [row!.id]);
    expect(left!.n).toBe(0);
    expect(await purgeEventBatch(t.database.sql, 7, 100)).toBe(0);
    await t.database.sql.query("DELETE FROM event_endpoints WHERE id = $1::bigint", [row!.id]);
  });
});

describe("the feed cursor", () => {
  test("round-trips, old (position) and new (transaction id, event id), and anything it did not issue is refused", () => {
    for (const position of ["0", "1", "9223372036854775807"]) expect(decodeFeedCursor(encodeFeedCursor({ position }))).toEqual({ position });
    for (const [xid, id] of [["0", "0"], ["748", "12"], ["9223372036854775807", "9223372036854775807"]] as const) {
      expect(decodeFeedCursor(encodeFeedCursor({ xid, id }))).toEqual({ xid, id });
    }
    // A cursor issued before migration 0017 is still read as the position it names.
    expect(decodeFeedCursor(Buffer.from("p42").toString("base64url"))).toEqual({ position: "42" });
    const encoded = (text: string) => Buffer.from(text).toString("base64url");
    for (const bad of ["", "x", encoded("p1.2"), encoded("p-1"), encoded("p01"), encoded("1"), "a".repeat(65), encoded("p9223372036854775808"),
      encoded("x1"), encoded("x1.02"), encoded("x.1"), encoded("x1.2.3"), encoded("x9223372036854775808.1"), encoded("x1.9223372036854775808"), encoded("p1.2x")]) {
      expect(decodeFeedCursor(bad)).toBeNull();
    }
  });
});

describe("the feed order under concurrent transactions (PostgreSQL)", () => {
  let t: TestApp;
  let other: postgres.Sql;
  beforeAll(async () => {
    t = await buildTestApp({ config: { rateLimitPerSenderPerMin: 100000 } });
    other = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  }, 60_000);
  afterAll(async () => {
    await other?.end();
    await t?.close();
  });
  const optOut = (n: number) =>
    `INSERT INTO opt_outs (from_addr, to_addr, source, reason) VALUES ('+1202555${String(n).padStart(4, "0")}', '+13035559999', 'inbound', 'STOP')`;
  const page = (after = FEED_START) => feedPage(t.database.sql, after, null, 1000, 64);
  const froms = (items: { data: Record<string, unknown> }[]) => items.map((e) => e.data.from);

  test("an event whose transaction commits late is never behind a cursor already handed out", async () => {
    const start = (await page()).next;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let wrote!: () => void;
    const written = new Promise<void>((resolve) => (wrote = resolve));
    // The early transaction writes its event first (lower id, lower transaction id) and commits last.
    const early = t.database.sql.transaction(async (tx) => {
      await tx.query(optOut(1));
      wrote();
      await held;
    });
    await written;
    await t.database.sql.query(optOut(2));
    const during = await page(start);
    expect(froms(during.items)).toEqual([]);
    expect(during.next).toEqual(start);
    // The later event is committed and held back: what messaging_event_feed_held_back_seconds shows.
    await Bun.sleep(1100);
    expect(await feedHeldBackSeconds(t.database.sql)).toBeGreaterThan(1);
    release();
    await early;
    const after = await page(during.next);
    expect(froms(after.items)).toEqual(["+12025550001", "+12025550002"]);
    expect((await page(after.next)).items).toEqual([]);
    expect(await feedHeldBackSeconds(t.database.sql)).toBe(0);
  });

  test("a long transaction in another database holds nothing back", async () => {
    const start = (await page()).next;
    await other.begin(async (tx) => {
      await tx`SELECT pg_current_xact_id()`;
      await t.database.sql.query(optOut(3));
      expect(froms((await page(start)).items)).toEqual(["+12025550003"]);
    });
  });

  test("a message's later event sorts after its earlier one even when its transaction began first", async () => {
    const sent = await request(t.app, "POST", "/api/messages/sms", { body: sms("+12025550004", "+13035550004") });
    expect(sent.status).toBe(202);
    const start = (await page()).next;
    // `first` draws its transaction id, then `second` changes the message and commits, then `first` changes it.
    await t.database.sql.transaction(async (first) => {
      await first.query(optOut(5));
      await t.database.sql.query("UPDATE messages SET status = 'failed', status_reason = 'second' WHERE id = $1::bigint", [sent.json.id]);
      await first.query("UPDATE messages SET status = 'canceled' WHERE id = $1::bigint", [sent.json.id]);
    });
    const mine = (await page(start)).items.filter((e) => e.data.id === sent.json.id);
    expect(mine.map((e) => `${e.sequence}:${e.type}`)).toEqual(["2:message.failed", "3:message.canceled"]);
  });
});

describe("endpoint routes need the admin scope", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ config: { auth: "on", ssrfAllowlist: ["127.0.0.1"], egressAllowHttp: true } });
  }, 60_000);
  afterAll(() => t?.close());

  test("a read key may read the feed but not list, add or change endpoints; no key gets 401", async () => {
    const reader = await createApiKey(t.database.sql, { name: "reader", scopes: ["read"] });
    const auth = { authorization: `Bearer ${reader.key}` };
    expect((await request(t.app, "GET", "/api/events", { headers: auth })).status).toBe(200);
    expect((await request(t.app, "GET", "/api/event-endpoints", { headers: auth })).status).toBe(403);
    expect((await request(t.app, "POST", "/api/event-endpoints", { headers: auth, body: { url: "http://127.0.0.1:9/", events: ["*"] } })).status).toBe(403);
    expect((await request(t.app, "POST", "/api/event-endpoints/1/enable", { headers: auth })).status).toBe(403);
    expect((await request(t.app, "GET", "/api/events")).status).toBe(401);
  });

  test("without a master key an admin is told the secret cannot be stored, and nothing is", async () => {
    const admin = await createApiKey(t.database.sql, { name: "admin", scopes: ["admin"] });
    const res = await request(t.app, "POST", "/api/event-endpoints", { headers: { authorization: `Bearer ${admin.key}` }, body: { url: "http://127.0.0.1:9/", events: ["*"] } });
    expect(res.status).toBe(503);
    expect(res.json.message).toContain("master key");
    const listed = await request(t.app, "GET", "/api/event-endpoints", { headers: { authorization: `Bearer ${admin.key}` } });
    expect(listed.json.items).toEqual([]);
  });
});
