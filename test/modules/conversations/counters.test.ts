/**
 * The conversation total (`meta.total`, from conversation_counters) and every message_count stay equal to the
 * rows under concurrent sends (batched and keyed), webhooks with duplicates and failed batches, on both
 * databases; and the write path tells a conversation it inserted from one it found.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { insertMessage, insertOutboundBatch, INSERTED } from "../../../src/modules/messages/repository.ts";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { expectCountersExact } from "../../helpers/counters.ts";
import { concurrently, countRows, get, outboundRow, phone, post, smsSend, smsWebhook, UNLIMITED } from "../../helpers/messaging.ts";

const REJECTED_BODY = "the database refuses this body";

describe.each(["postgres", "embedded"] as const)("conversation counters on %s", (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database, config: UNLIMITED });
    // A message the database refuses, failing whatever statement carries it (a whole batch, at first).
    await t.database.sql.query(`
      CREATE FUNCTION refuse_marked_body() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.body = '${REJECTED_BODY}' THEN RAISE EXCEPTION 'refused by the test'; END IF;
        RETURN NEW;
      END $$`);
    await t.database.sql.query("CREATE TRIGGER refuse_marked_body BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION refuse_marked_body()");
  }, 60_000);
  afterAll(() => t.close());

  const counted = async () => {
    const [row] = await t.database.sql.query<{ n: number }>("SELECT coalesce(sum(conversations), 0)::int AS n FROM conversation_counters");
    return row!.n;
  };

  test("xmax = 0 marks the rows an INSERT … ON CONFLICT DO UPDATE inserted, not those it updated", async () => {
    const [old, fresh] = [`probe:${crypto.randomUUID()}`, `probe:${crypto.randomUUID()}`];
    const upsert = (keys: string[]) =>
      t.database.sql.query<{ key: string; inserted: boolean }>(
        `INSERT INTO conversations AS c (transport, participant_a, participant_b, key, message_count, last_activity_at)
         SELECT 'sms', 'a', 'b', k, 1, now() FROM unnest($1::text[]) AS k
         ON CONFLICT (key) DO UPDATE SET message_count = c.message_count + 1
         RETURNING c.key, ${INSERTED}`,
        [`{${keys.join(",")}}`],
      );
    expect(await upsert([old])).toEqual([{ key: old, inserted: true }]);
    const rows = await upsert([old, fresh]);
    expect(Object.fromEntries(rows.map((r) => [r.key, r.inserted]))).toEqual({ [old]: false, [fresh]: true });
    await t.database.sql.query("DELETE FROM conversations WHERE key = ANY($1::text[])", [`{${old},${fresh}}`]);
  });

  test("a new pair counts once, a known pair not at all", async () => {
    const before = await counted();
    const body = smsSend();
    expect((await post(t.app, "/api/messages/sms", body)).status).toBe(202);
    expect(await counted()).toBe(before + 1);
    expect((await post(t.app, "/api/messages/sms", body)).status).toBe(202);
    expect((await post(t.app, "/api/webhooks/sms", smsWebhook({ from: body.to, to: body.from }))).status).toBe(202);
    expect(await counted()).toBe(before + 1);
  });

  test("a batch the database refuses counts nothing: its new conversations roll back with it", async () => {
    const before = await counted();
    const conversations = await countRows(t.database, "conversations");
    const batch = [outboundRow(phone(), "fine"), outboundRow(phone(), REJECTED_BODY), outboundRow(phone(), "fine too")];
    await expect(insertOutboundBatch(t.database.sql, batch, crypto.randomUUID())).rejects.toThrow();
    expect(await counted()).toBe(before);
    expect(await countRows(t.database, "conversations")).toBe(conversations);
    const stored = await insertOutboundBatch(t.database.sql, [batch[0]!, batch[2]!], crypto.randomUUID());
    expect(stored).toHaveLength(2);
    expect(await counted()).toBe(before + 2);
  });

  test("a keyed send the database refuses counts nothing either", async () => {
    const before = await counted();
    await expect(insertMessage(t.database.sql, outboundRow(phone(), REJECTED_BODY), crypto.randomUUID())).rejects.toThrow();
    expect(await counted()).toBe(before);
  });

  test("hammered with batched and keyed sends, webhooks with duplicates and refused sends, the counters equal the rows", async () => {
    const pairs = Array.from({ length: 12 }, () => [phone(), phone()] as const);
    const webhooks = Array.from({ length: 20 }, (_, i) => {
      const [a, b] = pairs[i % pairs.length]!;
      return smsWebhook({ from: b, to: a, messaging_provider_id: `dup-${crypto.randomUUID()}` });
    });
    const results = await concurrently(200, (i) => {
      const [a, b] = pairs[i % pairs.length]!;
      switch (i % 5) {
        case 0:
          return post(t.app, "/api/messages/sms", smsSend({ from: a, to: b }));
        case 1:
          return post(t.app, "/api/messages/sms", smsSend({ from: b, to: a }), { "idempotency-key": crypto.randomUUID() });
        case 2:
          // Each webhook arrives twice or more (a provider's retries); only the first is stored.
          return post(t.app, "/api/webhooks/sms", webhooks[i % webhooks.length]!);
        case 3:
          // A brand-new pair per request: many conversations created at once, in batches.
          return post(t.app, "/api/messages/sms", smsSend());
        default:
          // Refused by the database: it fails the batch it rides in, whose neighbours are then retried alone.
          return post(t.app, "/api/messages/sms", smsSend({ from: a, to: phone(), body: REJECTED_BODY }));
      }
    });
    const refused = results.filter((r, i) => i % 5 === 4);
    expect(refused.every((r) => r.status >= 500)).toBe(true);
    expect(results.filter((r, i) => i % 5 !== 4).every((r) => r.status === 202)).toBe(true);
    const conversations = await expectCountersExact(t.database);
    expect((await get(t.app, "/api/conversations")).json.meta.total).toBe(conversations);
  }, 30_000);

  test.skipIf(database === "embedded")(
    "two first messages racing for a new pair: the loser's ON CONFLICT updates and is not counted",
    async () => {
      const before = await counted();
      const row = outboundRow(phone(), "race");
      let second: Promise<unknown> | undefined;
      await t.database.sql.transaction(async (tx) => {
        await insertMessage(tx, row, crypto.randomUUID());
        // The second statement finds no row to update (the first is not committed) and waits in its INSERT on
        // the first's key; when the first commits, its ON CONFLICT branch updates the row the first inserted.
        second = insertMessage(t.database.sql, row, crypto.randomUUID());
        await Bun.sleep(200);
      });
      await second;
      expect(await counted()).toBe(before + 1);
      expect(await countRows(t.database, "conversations", "key = $1 AND message_count = 2", [row.conversationKey])).toBe(1);
      await expectCountersExact(t.database);
    },
  );
});
