import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { countJobs, countRows, get, metricValue, post, smsSend, smsWebhook, UNLIMITED } from "../../helpers/messaging.ts";

// No dispatcher runs in app tests: a send stays `queued` with its delivery job until a report or SQL moves it.
let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: UNLIMITED });
});
afterAll(() => t.close());

const REPORTS = "/api/provider/mock/reports";
const report = (body: unknown) => post(t.app, REPORTS, body);

async function sendOne(): Promise<string> {
  const res = await post(t.app, "/api/messages/sms", smsSend());
  expect(res.status).toBe(202);
  return res.json.id;
}

/** Puts a message where the dispatcher would after the provider accepted it. */
async function acceptedAs(id: string, providerMessageId: string): Promise<void> {
  await t.database.sql.query("UPDATE messages SET status = 'sent', provider = 'sms-mms', provider_message_id = $2 WHERE id = $1", [id, providerMessageId]);
}

const statusCount = async (status: string) => metricValue(await t.metrics.registry.metrics(), "messaging_messages_status_total", { status });

describe("POST /api/provider/mock/reports", () => {
  test("a report by message id answers 202 with the new status, which GET /api/messages/{id} shows", async () => {
    const id = await sendOne();
    const before = await statusCount("delivered");
    const res = await report({ message_id: id, status: "delivered" });
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ status: "accepted", id, message_status: "delivered" });
    expect((await get(t.app, `/api/messages/${id}`)).json).toMatchObject({ id, status: "delivered", status_reason: null });
    expect(await statusCount("delivered")).toBe(before + 1);
  });

  test("a report by provider message id finds the message and keeps its error code as the reason", async () => {
    const id = await sendOne();
    const providerId = `SM${crypto.randomUUID()}`;
    await acceptedAs(id, providerId);
    const res = await report({ provider_message_id: providerId, status: "undelivered", error_code: "30003" });
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ status: "accepted", id, message_status: "undelivered" });
    expect((await get(t.app, `/api/messages/${id}`)).json).toMatchObject({
      status: "undelivered",
      provider: "sms-mms",
      provider_message_id: providerId,
      status_reason: "30003",
    });
  });

  test("a message id may be sent as a JSON number", async () => {
    const id = await sendOne();
    const res = await report({ message_id: Number(id), status: "failed" });
    expect(res.status).toBe(202);
    expect(res.json.message_status).toBe("failed");
  });

  test("a repeated report is accepted and changes nothing", async () => {
    const id = await sendOne();
    await report({ message_id: id, status: "failed", error_code: "first" });
    const before = await statusCount("failed");
    const again = await report({ message_id: id, status: "failed", error_code: "second" });
    expect(again.status).toBe(202);
    expect(again.json).toEqual({ status: "accepted", id, message_status: "failed" });
    expect((await get(t.app, `/api/messages/${id}`)).json).toMatchObject({ status: "failed", status_reason: "first" });
    expect(await statusCount("failed")).toBe(before);
  });

  test("failed after delivered is accepted and the message stays delivered", async () => {
    const id = await sendOne();
    await report({ message_id: id, status: "delivered" });
    const late = await report({ message_id: id, status: "failed", error_code: "30008" });
    expect(late.status).toBe(202);
    expect(late.json.message_status).toBe("delivered");
    expect((await get(t.app, `/api/messages/${id}`)).json).toMatchObject({ status: "delivered", status_reason: null });
  });

  test("a final report removes the delivery job, so the dispatcher stops retrying", async () => {
    const id = await sendOne();
    expect(await countJobs(t.database, "message_id = $1", [id])).toBe(1);
    await report({ message_id: id, status: "undelivered" });
    expect(await countJobs(t.database, "message_id = $1", [id])).toBe(0);
  });

  test("an unknown message is a 404 in the error envelope", async () => {
    for (const body of [{ message_id: "999999999", status: "delivered" }, { provider_message_id: "nobody-gave-this", status: "delivered" }]) {
      const res = await report(body);
      expect(res.status).toBe(404);
      expect(res.json).toEqual({ code: "not_found", message: expect.any(String), request_id: expect.any(String) });
      expect(res.json.message).not.toContain("nobody-gave-this");
    }
  });

  test("an inbound message is not an outbound message: 404 by id and by its provider id, and it stays received", async () => {
    const hook = smsWebhook();
    const inbound = await post(t.app, "/api/webhooks/sms", hook);
    expect((await report({ message_id: inbound.json.id, status: "delivered" })).status).toBe(404);
    expect((await report({ provider_message_id: hook.messaging_provider_id, status: "failed" })).status).toBe(404);
    expect((await get(t.app, `/api/messages/${inbound.json.id}`)).json.status).toBe("received");
  });

  test.each([
    ["an unknown status", { status: "read" }, "status"],
    ["sent, which only a real provider's adapter reports", { status: "sent" }, "status"],
    ["a missing status", { status: undefined }, "status"],
    ["a message id that is not a positive integer", { message_id: "0" }, "message_id"],
    ["a message id with letters", { message_id: "12a" }, "message_id"],
    ["a negative numeric message id", { message_id: -3 }, "message_id"],
    ["an error code longer than 64 characters", { error_code: "x".repeat(65) }, "error_code"],
    ["both ids", { provider_message_id: "SM1" }, "root"],
    ["neither id", { message_id: undefined }, "root"],
  ])("%s is a 400 naming the field", async (_case, override, path) => {
    const res = await report({ message_id: "1", status: "delivered", ...override });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    expect(res.json.details.map((d: { path: string }) => d.path)).toContain(path);
  });
});
