// Migration 0017 on a database that already holds events, on both databases: the events the sequencer of 0012
// numbered keep their order and come first, a cursor issued before the upgrade reads on from where it was, the
// committed events it had not numbered yet are in the feed and routed once, and none already routed is again.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { migrations as embedded } from "../../drizzle/manifest.ts";
import { type DatabaseHandle, openPostgres } from "../../src/db/client.ts";
import { migrateUp } from "../../src/db/migrate.ts";
import { routeEvents } from "../../src/events/deliveries.ts";
import { decodeFeedCursor, encodeFeedCursor, FEED_START, type FeedPosition, feedPage } from "../../src/events/feed.ts";
import { createEmbeddedTestDatabase, createTestDatabase } from "../helpers/database.ts";

const UPGRADE = "0017_event_order_by_xid";

async function open(kind: "postgres" | "embedded"): Promise<{ handle: DatabaseHandle; close(): Promise<void> }> {
  if (kind === "embedded") {
    const e = await createEmbeddedTestDatabase();
    return { handle: e.handle, close: e.remove };
  }
  const pg = await createTestDatabase();
  const handle = openPostgres(pg.url, 2);
  return { handle, close: async () => (await handle.close(), await pg.drop()) };
}

describe.each(["postgres", "embedded"] as const)("upgrading events to migration 0017 on %s", (kind) => {
  let db: { handle: DatabaseHandle; close(): Promise<void> };
  beforeAll(async () => {
    db = await open(kind);
  }, 60_000);
  afterAll(() => db?.close());

  test("old events keep their order and come first, an old cursor reads on, the unnumbered ones are routed once", async () => {
    const sql = db.handle.sql;
    const upgrade = embedded.findIndex((m) => m.tag === UPGRADE);
    expect(upgrade).toBeGreaterThan(0);
    await migrateUp(db.handle.db, embedded.slice(0, upgrade));
    const optOut = (n: number) =>
      sql.query(`INSERT INTO opt_outs (from_addr, to_addr, source, reason) VALUES ('+120255500${n}0', '+13035550000', 'inbound', 'STOP')`);
    for (const n of [1, 2, 3, 4]) await optOut(n);
    const ids = (await sql.query<{ id: string }>("SELECT id::text AS id FROM events ORDER BY id")).map((r) => r.id);
    expect(ids).toHaveLength(4);
    const [endpoint] = await sql.query<{ id: string }>("INSERT INTO event_endpoints (url, events) VALUES ('http://127.0.0.1:9/', '{*}') RETURNING id::text AS id");
    // As 0012's sequencer left them: the second event committed first (position 1), the fourth not numbered yet,
    // the first still to be delivered, the other two delivered.
    await sql.query("UPDATE events SET position = CASE id WHEN $1::bigint THEN 2 WHEN $2::bigint THEN 1 WHEN $3::bigint THEN 3 END WHERE id <> $4::bigint", ids);
    await sql.query("UPDATE event_router SET position = 3");
    await sql.query("INSERT INTO event_deliveries (endpoint_id, event_id, subject, sequence) SELECT $1::bigint, id, subject, sequence FROM events WHERE id = $2::bigint", [endpoint!.id, ids[0]]);
    const oldCursor = encodeFeedCursor({ position: "1" });

    expect(await migrateUp(db.handle.db, embedded.slice(0, upgrade + 1))).toEqual([UPGRADE]);
    await optOut(5);
    // The first opt-out taken back: its second event, after the upgrade.
    await sql.query("DELETE FROM opt_outs WHERE from_addr = '+12025550010'");

    const from = (items: { type: string; sequence: number; data: Record<string, unknown> }[]) =>
      items.map((e) => `${String(e.data.from).slice(-2)}:${e.type === "recipient.opted_in" ? "in" : "out"}:${e.sequence}`);
    const whole = await feedPage(sql, FEED_START, null, 100, 64);
    expect(from(whole.items)).toEqual(["20:out:1", "10:out:1", "30:out:1", "40:out:1", "50:out:1", "10:in:2"]);
    const resumed = await feedPage(sql, decodeFeedCursor(oldCursor)!, null, 100, 64);
    expect(from(resumed.items)).toEqual(["10:out:1", "30:out:1", "40:out:1", "50:out:1", "10:in:2"]);
    // Page by page, through the seam between the two orders.
    const paged: string[] = [];
    let at: FeedPosition = FEED_START;
    for (let i = 0; i < 10; i++) {
      const p = await feedPage(sql, decodeFeedCursor(encodeFeedCursor(at))!, null, 2, 64);
      if (p.items.length === 0) break;
      paged.push(...from(p.items));
      at = p.next;
    }
    expect(paged).toEqual(from(whole.items));

    const routed = await routeEvents(sql, 100);
    expect(routed.deliveries).toBe(3);
    expect((await routeEvents(sql, 100)).events).toBe(0);
    const delivered = await sql.query<{ id: string }>("SELECT event_id::text AS id FROM event_deliveries ORDER BY event_id");
    const [fifth, sixth] = (await sql.query<{ id: string }>("SELECT id::text AS id FROM events WHERE id > $1::bigint ORDER BY id", [ids[3]])).map((r) => r.id);
    expect(delivered.map((r) => r.id)).toEqual([ids[0]!, ids[3]!, fifth!, sixth!]);
  }, 60_000);
});
