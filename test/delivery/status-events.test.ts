import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type DatabaseHandle, openPostgres } from "../../src/db/client.ts";
import type { SqlRunner } from "../../src/db/runner.ts";
import { claimJobs, recordResults } from "../../src/delivery/jobs.ts";
import { advanceStatuses } from "../../src/delivery/status.ts";
import { createMigratedTestDatabase, openMigratedDatabase } from "../helpers/database.ts";

/*
 * The status write inserts the events of its moves itself (migration 0020), in the statement that moves them; the
 * row trigger writes the event only of a status change that did not (a writer of before 0020, an operator's UPDATE).
 * These tests hold the events to what the trigger wrote: one per move, in sequence, none for a repeat or for a
 * provider-field fill, and, on PostgreSQL, after the event of a writer whose row lock the write waited for.
 */

/** A queued outbound SMS in the delivery queue, with the `message.queued` event its insert writes. */
async function queuedMessage(sql: SqlRunner): Promise<string> {
  const [row] = await sql.query<{ id: string }>(
    `WITH conv AS (
       INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
       VALUES ('sms', '+12015550100', '+12015550101', 'sms:+12015550100<->+12015550101', 1, now())
       ON CONFLICT (key) DO UPDATE SET message_count = conversations.message_count + 1 RETURNING id)
     INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp, run_at)
     SELECT conv.id, 'outbound', 'sms', 'sms', '+12015550100', '+12015550101', 'hi', 'queued', now(), now() FROM conv
     RETURNING id::text AS id`,
  );
  return row!.id;
}

interface EventRow {
  sequence: number;
  type: string;
  status: string;
  reason: string | null;
  provider: string | null;
  provider_message_id: string | null;
  feed_xid: string;
}

const eventsOf = (sql: SqlRunner, id: string) =>
  sql.query<EventRow>(
    `SELECT sequence, type, status, reason, provider, provider_message_id, feed_xid::text AS feed_xid
       FROM events WHERE subject = $1 ORDER BY feed_xid, id`,
    [id],
  );
const summary = (events: EventRow[]) => events.map((e) => `${e.sequence}:${e.type}`);

/** Claims every due message for `holder` and returns their ids. */
async function claimAll(sql: SqlRunner, holder: string): Promise<string[]> {
  const { jobs } = await claimJobs(sql, { holder, claim: `${holder}#1`, limit: 100, leaseMs: 60_000, takeoverMs: 5000 });
  return jobs.map((j) => j.id);
}

const attempt = (messageId: string) => ({
  messageId,
  attempt: 1,
  provider: "sms-mms",
  outcome: "accepted",
  statusCode: null,
  error: null,
  durationMs: 1,
  startedAt: new Date("2026-01-01T00:00:00Z"),
});
const sent = (messageId: string, providerMessageId = `p-${messageId}`) =>
  ({ messageId, end: "sent", provider: "sms-mms", providerMessageId, calls: 1 }) as const;

describe.each(["postgres", "embedded"] as const)("status events written by the status write on %s", (kind) => {
  let db: { database: DatabaseHandle; close(): Promise<void> };
  let sql: SqlRunner;
  beforeAll(async () => {
    db = await openMigratedDatabase(kind, 3);
    sql = db.database.sql;
  }, 60_000);
  afterAll(() => db.close());

  test("a result write records one event per move, with the message's fields, and the trigger adds none", async () => {
    const ids = [await queuedMessage(sql), await queuedMessage(sql)];
    expect((await claimAll(sql, "w-a")).toSorted()).toEqual(ids.toSorted());
    const failed = { messageId: ids[1]!, end: "failed", reason: "no route", calls: 1 } as const;
    const moves = await recordResults(sql, "w-a", ids.map(attempt), [sent(ids[0]!), failed]);
    expect(moves.toSorted((x, y) => x.status.localeCompare(y.status))).toEqual([{ status: "failed", count: 1 }, { status: "sent", count: 1 }]);
    expect(await eventsOf(sql, ids[0]!)).toMatchObject([
      { sequence: 1, type: "message.queued" },
      { sequence: 2, type: "message.sent", status: "sent", provider: "sms-mms", provider_message_id: `p-${ids[0]}` },
    ]);
    expect(await eventsOf(sql, ids[1]!)).toMatchObject([
      { sequence: 1, type: "message.queued" },
      { sequence: 2, type: "message.failed", status: "failed", reason: "no route" },
    ]);
    const counts = await sql.query<{ status_events: number }>("SELECT status_events FROM messages WHERE id = ANY($1::bigint[])", [`{${ids.join(",")}}`]);
    expect(counts.map((c) => c.status_events)).toEqual([1, 1]);
  });

  test("writing the same results again (mayRepeat) writes no second event and no second attempt", async () => {
    const id = await queuedMessage(sql);
    await claimAll(sql, "w-b");
    expect(await recordResults(sql, "w-b", [attempt(id)], [sent(id)])).toEqual([{ status: "sent", count: 1 }]);
    expect(await recordResults(sql, "w-b", [attempt(id)], [sent(id)], { mayRepeat: true })).toEqual([]);
    expect(summary(await eventsOf(sql, id))).toEqual(["1:message.queued", "2:message.sent"]);
    const [logged] = await sql.query<{ n: number }>("SELECT count(*)::int AS n FROM delivery_attempts WHERE message_id = $1::bigint", [id]);
    expect(logged!.n).toBe(1);
  });

  test("a report's move gets its event from the status write; a later provider-field fill gets none", async () => {
    const id = await queuedMessage(sql);
    await claimAll(sql, "w-c");
    // An acceptance without a provider id, then the same status again with one: a fill, not a move.
    await recordResults(sql, "w-c", [attempt(id)], [{ messageId: id, end: "sent", provider: "sms-mms", providerMessageId: null, calls: 1 }]);
    expect(await advanceStatuses(sql, [{ messageId: id, to: "sent", providerMessageId: "late-id" }])).toEqual([{ id, status: "sent", moved: true }]);
    expect(await advanceStatuses(sql, [{ messageId: id, to: "delivered" }])).toEqual([{ id, status: "delivered", moved: true }]);
    expect(await eventsOf(sql, id)).toMatchObject([
      { sequence: 1, type: "message.queued" },
      { sequence: 2, type: "message.sent", provider_message_id: null },
      { sequence: 3, type: "message.delivered", provider_message_id: "late-id" },
    ]);
  });

  test("a status change that does not count its event still gets one from the trigger, in sequence", async () => {
    const id = await queuedMessage(sql);
    await claimAll(sql, "w-d");
    await sql.query("UPDATE messages SET status = 'sent' WHERE id = $1::bigint", [id]);
    await advanceStatuses(sql, [{ messageId: id, to: "delivered" }]);
    expect(summary(await eventsOf(sql, id))).toEqual(["1:message.queued", "2:message.sent", "3:message.delivered"]);
  });
});

describe("a status write that waited for a message's row lock (PostgreSQL)", () => {
  let db: { database: DatabaseHandle; close(): Promise<void> };
  let observer: DatabaseHandle;
  let writer: DatabaseHandle;
  let url: string;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const pg = await createMigratedTestDatabase();
    url = pg.url;
    drop = pg.drop;
    const database = openPostgres(url, 2);
    db = { database, close: () => database.close() };
    observer = openPostgres(url, 1);
    writer = openPostgres(url, 1);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([db.close(), observer.close(), writer.close()]);
    await drop();
  });

  /** Resolves once a statement of this database waits for a lock: the result write is blocked behind the report. */
  async function someoneWaitsForALock(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const [row] = await observer.sql.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
      );
      if (row!.n > 0) return;
      await Bun.sleep(10);
    }
    throw new Error("the result write never waited for the row lock");
  }

  test("follows the event its lock's holder committed meanwhile, in sequence and in feed order", async () => {
    const sql = db.database.sql;
    const id = await queuedMessage(sql);
    await claimAll(sql, "w-e");
    let write: Promise<unknown> | undefined;
    // A `sent` report takes the row first; the result write (a failure) starts, with its snapshot, and waits.
    await sql.transaction(async (tx) => {
      expect(await advanceStatuses(tx, [{ messageId: id, to: "sent" }])).toHaveLength(1);
      write = recordResults(writer.sql, "w-e", [attempt(id)], [{ messageId: id, end: "failed", reason: "late failure", calls: 1 }]);
      await someoneWaitsForALock();
    });
    await write;
    const events = await eventsOf(sql, id);
    expect(summary(events)).toEqual(["1:message.queued", "2:message.sent", "3:message.failed"]);
    expect(BigInt(events[2]!.feed_xid)).toBeGreaterThanOrEqual(BigInt(events[1]!.feed_xid));
  });

  test("follows the event of a writer that committed after its transaction began, in feed order", async () => {
    const sql = db.database.sql;
    const id = await queuedMessage(sql);
    await claimAll(sql, "w-f");
    // `first` draws its transaction id, then a `sent` report commits, then `first` writes `delivered`.
    await sql.transaction(async (first) => {
      await first.query("SELECT pg_current_xact_id()");
      await advanceStatuses(writer.sql, [{ messageId: id, to: "sent" }]);
      await advanceStatuses(first, [{ messageId: id, to: "delivered" }]);
    });
    const events = await eventsOf(sql, id);
    expect(summary(events)).toEqual(["1:message.queued", "2:message.sent", "3:message.delivered"]);
    expect(events[2]!.feed_xid).toBe(events[1]!.feed_xid);
  });
});
