/**
 * A message deleted while a worker was calling its provider (DELETE /api/conversations/{id}, retention): the
 * worker's results for the rest of its batch are still written, and the deleted message's attempt is dropped.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type AttemptRecord, recordResults } from "../../src/delivery/jobs.ts";
import { buildTestApp, request, type TestApp } from "../helpers/app.ts";
import { rowsOfMessages } from "../helpers/counters.ts";
import { post, smsSend, UNLIMITED } from "../helpers/messaging.ts";

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: UNLIMITED });
}, 60_000);
afterAll(() => t.close());

const attempt = (messageId: string): AttemptRecord => ({
  messageId,
  attempt: 1,
  provider: "sms-mms",
  outcome: "accepted",
  statusCode: 200,
  error: null,
  durationMs: 3,
  startedAt: new Date(),
});

test("the batch's other results are written; the deleted message's attempt is dropped", async () => {
  const kept = (await post(t.app, "/api/messages/sms", smsSend())).json;
  const deleted = (await post(t.app, "/api/messages/sms", smsSend())).json;
  expect((await request(t.app, "DELETE", `/api/conversations/${deleted.conversation_id}`)).status).toBe(204);

  const moved = await recordResults(t.database.sql, "worker-1", [attempt(deleted.id), attempt(kept.id)], [
    { messageId: deleted.id, end: "sent", provider: "sms-mms", providerMessageId: "p-1", calls: 1 },
    { messageId: kept.id, end: "sent", provider: "sms-mms", providerMessageId: "p-2", calls: 1 },
  ]);
  expect(moved).toEqual([{ status: "sent", count: 1 }]);
  expect(await rowsOfMessages(t.database, "delivery_attempts", [kept.id])).toBe(1);
  expect(await rowsOfMessages(t.database, "delivery_attempts", [deleted.id])).toBe(0);
  expect(await rowsOfMessages(t.database, "delivery_jobs", [kept.id])).toBe(0);
});
