/**
 * Retention (MESSAGING_RETENTION_DAYS): messages older than N days by their own timestamp go, with their
 * attempts and jobs; conversations left empty go; message_count and the total stay exact; concurrent purges
 * delete and count nothing twice.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { purgeOldMessages, retentionReporter } from "../../../src/modules/retention/service.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { buildTestApp, captureLogger, type TestApp } from "../../helpers/app.ts";
import { addAttempt, expectCountersExact, rowsOfMessages } from "../../helpers/counters.ts";
import { countRows, get, metricValue, phone, post, smsSend, smsWebhook, UNLIMITED } from "../../helpers/messaging.ts";

const DAY = 24 * 60 * 60 * 1000;
const daysAgo = (days: number) => new Date(Date.now() - days * DAY).toISOString();

describe.each(["postgres", "embedded"] as const)("retention on %s", (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database, config: UNLIMITED });
  }, 60_000);
  afterAll(() => t.close());

  async function send(body: Record<string, unknown>, path = "/api/messages/sms") {
    const res = await post(t.app, path, body);
    expect(res.status).toBe(202);
    return res.json as { id: string; conversation_id: string };
  }

  test("old messages go with their attempts and jobs; a conversation left empty goes; counts stay exact", async () => {
    // Everything stored so far by other tests is recent; this test's old messages are 40 and 31 days old.
    const [a, b] = [phone(), phone()];
    const oldOnly = [await send(smsSend({ from: a, to: b, timestamp: daysAgo(40) })), await send(smsWebhook({ from: b, to: a, timestamp: daysAgo(31) }), "/api/webhooks/sms")];
    const [c, d] = [phone(), phone()];
    const mixedOld = [await send(smsSend({ from: c, to: d, timestamp: daysAgo(40) })), await send(smsSend({ from: c, to: d, timestamp: daysAgo(35) }))];
    const mixedNew = await send(smsSend({ from: d, to: c, timestamp: daysAgo(29) }));
    const recent = await send(smsSend({ timestamp: new Date().toISOString() }));
    const oldIds = [...oldOnly, ...mixedOld].map((m) => m.id);
    await addAttempt(t.database, oldOnly[0]!.id);
    await addAttempt(t.database, mixedOld[0]!.id);
    const totalBefore = (await get(t.app, "/api/conversations")).json.meta.total as number;

    // A batch of 1 forces the loop: every message takes its own statement.
    expect(await purgeOldMessages(t.database.sql, 30, 1)).toEqual({ messages: 4, conversations: 1 });

    expect(await countRows(t.database, "messages", "id = ANY($1::bigint[])", [`{${oldIds.join(",")}}`])).toBe(0);
    expect(await rowsOfMessages(t.database, "delivery_attempts", oldIds)).toBe(0);
    expect(await rowsOfMessages(t.database, "delivery_jobs", oldIds)).toBe(0);
    expect(await countRows(t.database, "conversations", "id = $1", [oldOnly[0]!.conversation_id])).toBe(0);
    const mixed = await get(t.app, `/api/conversations/${mixedNew.conversation_id}/messages`);
    expect(mixed.json.meta.total).toBe(1);
    expect(mixed.json.items.map((m: { id: string }) => m.id)).toEqual([mixedNew.id]);
    expect((await get(t.app, `/api/messages/${recent.id}`)).status).toBe(200);
    expect((await get(t.app, "/api/conversations")).json.meta.total).toBe(totalBefore - 1);
    await expectCountersExact(t.database);

    // Nothing left to purge: a second run deletes nothing.
    expect(await purgeOldMessages(t.database.sql, 30)).toEqual({ messages: 0, conversations: 0 });
  });

  test("a message whose delivery a worker holds stays until the lease ends", async () => {
    const held = await send(smsSend({ timestamp: daysAgo(50) }));
    await t.database.sql.query("UPDATE messages SET locked_by = 'worker-1', locked_until = now() + interval '1 hour' WHERE id = $1", [held.id]);
    await purgeOldMessages(t.database.sql, 30);
    expect((await get(t.app, `/api/messages/${held.id}`)).status).toBe(200);
    await t.database.sql.query("UPDATE messages SET locked_by = NULL, locked_until = NULL WHERE id = $1", [held.id]);
    expect(await purgeOldMessages(t.database.sql, 30)).toEqual({ messages: 1, conversations: 1 });
    expect(await rowsOfMessages(t.database, "delivery_jobs", [held.id])).toBe(0);
    await expectCountersExact(t.database);
  });

  test("a message exactly inside the window stays", async () => {
    const kept = await send(smsSend({ timestamp: daysAgo(6.9) }));
    await purgeOldMessages(t.database.sql, 7);
    expect((await get(t.app, `/api/messages/${kept.id}`)).status).toBe(200);
  });

  test("a send after its conversation was purged starts it anew", async () => {
    const body = smsSend({ timestamp: daysAgo(100) });
    const first = await send(body);
    await purgeOldMessages(t.database.sql, 90);
    const again = await send({ ...body, timestamp: new Date().toISOString() });
    expect(again.conversation_id).not.toBe(first.conversation_id);
    await expectCountersExact(t.database);
  });
});

describe("concurrent purges on PostgreSQL", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ config: UNLIMITED });
  }, 60_000);
  afterAll(() => t.close());

  test("four instances purging at once, with sends arriving, delete and count every old message exactly once", async () => {
    const pairs = Array.from({ length: 30 }, () => [phone(), phone()] as const);
    const conversationIds: string[] = [];
    for (const [i, [a, b]] of pairs.entries()) {
      for (let k = 0; k < 5; k++) {
        const sent = await post(t.app, "/api/messages/sms", smsSend({ from: a, to: b, timestamp: daysAgo(60 + k) }));
        if (k === 0) conversationIds.push(sent.json.conversation_id);
      }
      if (i % 3 === 0) await post(t.app, "/api/messages/sms", smsSend({ from: b, to: a, timestamp: daysAgo(1) }));
    }
    const old = await countRows(t.database, "messages", "timestamp < now() - interval '30 days'");
    expect(old).toBe(150);
    const [purges] = await Promise.all([
      Promise.all(Array.from({ length: 4 }, () => purgeOldMessages(t.database.sql, 30, 7))),
      Promise.all(pairs.map(([a, b]) => post(t.app, "/api/messages/sms", smsSend({ from: a, to: b, timestamp: new Date().toISOString() })))),
    ]);
    // A purge skips conversations a send holds; whatever is left goes in a later run.
    const later = await purgeOldMessages(t.database.sql, 30);
    const purged = [...purges, later].reduce((s, p) => ({ messages: s.messages + p.messages, conversations: s.conversations + p.conversations }));
    expect(purged.messages).toBe(old);
    expect(await countRows(t.database, "messages", "timestamp < now() - interval '30 days'")).toBe(0);
    // A pair whose old messages all went before its new send arrived lost its conversation (the send made a
    // new one); the count of removed conversations is exactly those.
    const gone = conversationIds.length - (await countRows(t.database, "conversations", "id = ANY($1::bigint[])", [`{${conversationIds.join(",")}}`]));
    expect(purged.conversations).toBe(gone);
    expect(gone).toBeLessThanOrEqual(20);
    await expectCountersExact(t.database);
  }, 30_000);
});

describe("what a run tells the operator", () => {
  test("a run that purged something counts both kinds in /metrics and logs one line; an empty run says nothing", async () => {
    const metrics = createMetrics({ version: "test" });
    const { logger, lines } = captureLogger();
    const report = retentionReporter(metrics, logger, 30);
    report({ messages: 0, conversations: 0 });
    report({ messages: 12, conversations: 3 });
    report({ error: new Error("database down") });
    const text = await metrics.registry.metrics();
    expect(metricValue(text, "messaging_retention_purged_total", { what: "messages" })).toBe(12);
    expect(metricValue(text, "messaging_retention_purged_total", { what: "conversations" })).toBe(3);
    expect(lines().map((l) => [l.msg, l.messages ?? null])).toEqual([
      ["messages past retention purged", 12],
      ["retention purge failed", null],
    ]);
  });
});
