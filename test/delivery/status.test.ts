import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type DatabaseHandle, openPostgres } from "../../src/db/client.ts";
import type { SqlRunner } from "../../src/db/runner.ts";
import { advanceStatuses } from "../../src/delivery/status.ts";
import { canTransition, MESSAGE_STATUSES, type MessageStatus } from "../../src/domain/message-status.ts";
import { createMigratedTestDatabase, openMigratedDatabase } from "../helpers/database.ts";

/*
 * advanceStatuses is the one status writer; its condition is the domain's transition table rendered into SQL.
 * These tests hold the SQL to the table for every pair of statuses, on both databases `serve` can run on, and
 * show that two writers racing on one row cannot leave it behind the furthest status either asked for.
 */

/** A message stored with the given status, as if earlier writers had put it there. */
async function messageWith(sql: SqlRunner, status: MessageStatus, direction: "outbound" | "inbound" = "outbound"): Promise<string> {
  const [row] = await sql.query<{ id: string }>(
    `WITH conv AS (
       INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
       VALUES ('sms', '+12015550100', '+12015550101', 'sms:+12015550100<->+12015550101', 1, now())
       ON CONFLICT (key) DO UPDATE SET message_count = conversations.message_count + 1 RETURNING id)
     INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp)
     SELECT conv.id, $1, 'sms', 'sms', '+12015550100', '+12015550101', 'hi', $2, now() FROM conv RETURNING id::text AS id`,
    [direction, status],
  );
  return row!.id;
}

interface Row {
  status: MessageStatus;
  provider: string | null;
  provider_message_id: string | null;
  status_reason: string | null;
}

async function rowOf(sql: SqlRunner, id: string): Promise<Row> {
  const [row] = await sql.query<Row>("SELECT status, provider, provider_message_id, status_reason FROM messages WHERE id = $1", [id]);
  return row!;
}

const PAIRS = MESSAGE_STATUSES.flatMap((from) => MESSAGE_STATUSES.map((to) => [from, to, canTransition(from, to)] as const));

describe.each(["postgres", "embedded"] as const)("advanceStatuses on %s", (kind) => {
  let db: { database: DatabaseHandle; close(): Promise<void> };
  let sql: SqlRunner;
  beforeAll(async () => {
    db = await openMigratedDatabase(kind);
    sql = db.database.sql;
  });
  afterAll(() => db.close());

  test.each(PAIRS)("%s → %s moves exactly when the transition table allows it (%p)", async (from, to, allowed) => {
    const id = await messageWith(sql, from);
    const result = await advanceStatuses(sql, [{ messageId: id, to, reason: "why" }]);
    expect(result).toEqual(allowed ? [{ id, status: to, moved: true }] : []);
    expect(await rowOf(sql, id)).toMatchObject({ status: allowed ? to : from, status_reason: allowed ? "why" : null });
  });

  test("one call with every pair moves exactly the allowed ones", async () => {
    const ids: string[] = [];
    for (const [from] of PAIRS) ids.push(await messageWith(sql, from));
    const result = await advanceStatuses(sql, PAIRS.map(([, to], i) => ({ messageId: ids[i]!, to })));
    const expected = PAIRS.flatMap(([, to, allowed], i) => (allowed ? [{ id: ids[i]!, status: to, moved: true }] : []));
    expect(result.toSorted((x, y) => Number(x.id) - Number(y.id))).toEqual(expected);
    const rows = await Promise.all(ids.map((id) => rowOf(sql, id)));
    expect(rows.map((r) => r.status)).toEqual(PAIRS.map(([from, to, allowed]) => (allowed ? to : from)));
  });

  test("an inbound message never moves, even from a status an outbound one could leave", async () => {
    for (const start of ["received", "queued", "sending"] as const) {
      const id = await messageWith(sql, start, "inbound");
      for (const to of MESSAGE_STATUSES) {
        expect(await advanceStatuses(sql, [{ messageId: id, to, providerMessageId: "p" }])).toEqual([]);
      }
      expect(await rowOf(sql, id)).toEqual({ status: start, provider: null, provider_message_id: null, status_reason: null });
    }
  });

  test("a late `sent` after `delivered` leaves the message delivered", async () => {
    const id = await messageWith(sql, "sending");
    expect(await advanceStatuses(sql, [{ messageId: id, to: "delivered" }])).toEqual([{ id, status: "delivered", moved: true }]);
    expect(await advanceStatuses(sql, [{ messageId: id, to: "sent" }])).toEqual([]);
    expect((await rowOf(sql, id)).status).toBe("delivered");
  });

  test("a repeated status is not a move", async () => {
    const id = await messageWith(sql, "queued");
    expect(await advanceStatuses(sql, [{ messageId: id, to: "sent" }])).toHaveLength(1);
    expect(await advanceStatuses(sql, [{ messageId: id, to: "sent" }])).toEqual([]);
  });

  test("the provider fields are filled only while empty, and even when the status cannot move", async () => {
    const id = await messageWith(sql, "sending");
    // A `delivered` report overtook the acceptance: the acceptance still names its provider, without a move.
    await advanceStatuses(sql, [{ messageId: id, to: "delivered" }]);
    const late = await advanceStatuses(sql, [{ messageId: id, to: "sent", provider: "sms-mms", providerMessageId: "first" }]);
    expect(late).toEqual([{ id, status: "delivered", moved: false }]);
    expect(await rowOf(sql, id)).toMatchObject({ status: "delivered", provider: "sms-mms", provider_message_id: "first" });
    // A second acceptance (another provider, another id) changes neither.
    expect(await advanceStatuses(sql, [{ messageId: id, to: "sent", provider: "other", providerMessageId: "second" }])).toEqual([]);
    expect(await rowOf(sql, id)).toMatchObject({ provider: "sms-mms", provider_message_id: "first" });
  });

  test("a refused failure does not overwrite the reason of the status that stands", async () => {
    const id = await messageWith(sql, "sent");
    await advanceStatuses(sql, [{ messageId: id, to: "undelivered", reason: "30003" }]);
    expect(await advanceStatuses(sql, [{ messageId: id, to: "failed", reason: "late" }])).toEqual([]);
    expect(await rowOf(sql, id)).toMatchObject({ status: "undelivered", status_reason: "30003" });
  });
});

describe("advanceStatuses racing on one row from two PostgreSQL connections", () => {
  let url: string;
  let drop: () => Promise<void>;
  let a: DatabaseHandle;
  let b: DatabaseHandle;
  let observer: DatabaseHandle;
  beforeAll(async () => {
    const pg = await createMigratedTestDatabase();
    url = pg.url;
    drop = pg.drop;
    a = openPostgres(url, 1);
    b = openPostgres(url, 1);
    observer = openPostgres(url, 1);
  });
  afterAll(async () => {
    await Promise.all([a.close(), b.close(), observer.close()]);
    await drop();
  });

  // Each race: where the message starts, the two statuses written at once, and the furthest of them.
  const RACES = [
    ["queued", "sent", "delivered", "delivered"],
    ["sending", "sent", "delivered", "delivered"],
    ["queued", "sending", "sent", "sent"],
    ["sending", "sent", "undelivered", "undelivered"],
    ["queued", "sending", "failed", "failed"],
  ] as const;

  test.each(RACES)("from %s, %s and %s in parallel always end at %s", async (start, one, two, furthest) => {
    for (let round = 0; round < 40; round++) {
      const id = await messageWith(a.sql, start);
      // Alternate which connection carries which status, so neither side is always first on the wire.
      const [x, y] = round % 2 === 0 ? [a, b] : [b, a];
      await Promise.all([advanceStatuses(x.sql, [{ messageId: id, to: one }]), advanceStatuses(y.sql, [{ messageId: id, to: two }])]);
      expect((await rowOf(observer.sql, id)).status).toBe(furthest);
    }
  });

  /** Resolves once some statement waits for a row lock, i.e. the second writer is blocked behind the first. */
  async function someoneWaitsForALock(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const [row] = await observer.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted");
      if (row!.n > 0) return;
      await Bun.sleep(10);
    }
    throw new Error("the second writer never waited for the row lock");
  }

  test.each([
    ["delivered", "sent", "delivered"],
    ["sent", "delivered", "delivered"],
  ] as const)("a writer blocked behind an uncommitted %s re-checks the table with it: %s then ends %s", async (first, second, end) => {
    const id = await messageWith(a.sql, "sending");
    let secondWrite: Promise<unknown> | undefined;
    await a.sql.transaction(async (tx) => {
      expect(await advanceStatuses(tx, [{ messageId: id, to: first }])).toHaveLength(1);
      secondWrite = advanceStatuses(b.sql, [{ messageId: id, to: second }]);
      await someoneWaitsForALock();
    });
    const secondResult = await secondWrite;
    expect(secondResult).toEqual(canTransition(first, second) ? [{ id, status: second, moved: true }] : []);
    expect((await rowOf(observer.sql, id)).status).toBe(end);
  });
});
