import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { postgresRunner } from "../../../src/db/runner.ts";
import { conversationsPage } from "../../../src/modules/conversations/repository.ts";
import { conversationMessagesPage } from "../../../src/modules/messages/repository.ts";
import { createMigratedTestDatabase, type TestDatabase } from "../../helpers/database.ts";

/*
 * The repositories' row keys over a bare postgres.js client, as any runner might be built: no drizzle has
 * replaced the driver's date serializer (which turns a timestamptz parameter into `new Date(x).toISOString()`,
 * milliseconds, and throws on `infinity`). Three rows one microsecond apart, ids against time, must still page
 * one by one in order.
 */
describe("page keys over a bare postgres.js client", () => {
  let pg: TestDatabase;
  let bare: ReturnType<typeof postgres>;
  let conversation: number;
  beforeAll(async () => {
    pg = await createMigratedTestDatabase();
    bare = postgres(pg.url, { max: 1, prepare: true, onnotice: () => {} });
    await bare.unsafe(`
      INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
      SELECT 'sms', '+1555000000' || i, '+16660000000', 'sms:+1555000000' || i || '<->+16660000000', 3,
             timestamptz '2030-01-01T00:00:00.123Z' + i * interval '1 microsecond'
        FROM generate_series(2, 0, -1) i`);
    conversation = Number((await bare`SELECT min(id) AS id FROM conversations`)[0]!.id);
    await bare.unsafe(
      `INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp)
       SELECT $1, 'outbound', 'sms', 'sms', '+15550000000', '+16660000000', 'm' || i, 'queued',
              timestamptz '2030-01-01T00:00:00.123Z' + i * interval '1 microsecond'
         FROM generate_series(2, 0, -1) i`,
      [conversation],
    );
  });
  afterAll(async () => {
    await bare?.end();
    await pg?.drop();
  });

  test("conversations, newest first, one per page", async () => {
    const sql = postgresRunner(bare);
    const seen: string[] = [];
    let page = await conversationsPage(sql, 1, 0);
    seen.push(...(JSON.parse(page.itemsJson) as { participant_a: string }[]).map((c) => c.participant_a));
    while (page.next) {
      expect(page.next.at).toMatch(/^2030-01-01T00:00:00\.12[0-9]{4}Z$/);
      page = await conversationsPage(sql, 1, 0, page.next);
      seen.push(...(JSON.parse(page.itemsJson) as { participant_a: string }[]).map((c) => c.participant_a));
    }
    expect(seen).toEqual(["+15550000002", "+15550000001", "+15550000000"]);
  });

  test("messages, oldest first, one per page", async () => {
    const sql = postgresRunner(bare);
    const seen: string[] = [];
    let page = await conversationMessagesPage(sql, conversation, 1, 0);
    seen.push(...page!.items.map((m) => m.body));
    while (page!.next) {
      page = await conversationMessagesPage(sql, conversation, 1, 0, page!.next);
      seen.push(...page!.items.map((m) => m.body));
    }
    expect(seen).toEqual(["m0", "m1", "m2"]);
  });
});
