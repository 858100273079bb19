import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { reportDelivery } from "../../src/delivery/reports.ts";
import { buildTestApp, type TestApp } from "../helpers/app.ts";
import { countJobs, countRows, metricValue, post, smsSend, UNLIMITED } from "../helpers/messaging.ts";

// reportDelivery is what real providers' webhooks will call; the mock's route covers the HTTP side.
describe.each(["postgres", "embedded"] as const)("reportDelivery on %s", (kind) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database: kind, config: UNLIMITED });
  });
  afterAll(() => t.close());

  const deps = () => ({ sql: t.database.sql, metrics: t.metrics });
  const statusCount = async (status: string) => metricValue(await t.metrics.registry.metrics(), "messaging_messages_status_total", { status });

  async function queued(): Promise<string> {
    return (await post(t.app, "/api/messages/sms", smsSend())).json.id;
  }

  test("a `sent` report moves the message and takes it out of the delivery queue: the provider has it", async () => {
    const id = await queued();
    const before = await statusCount("sent");
    expect(await reportDelivery(deps(), { messageId: id, status: "sent", errorCode: "ignored" })).toEqual({ found: true, messageId: id, status: "sent", changed: true });
    // (A claim would not have called a provider for it either: only `queued` and `sending` messages are delivered.)
    expect(await countJobs(t.database, "message_id = $1", [id])).toBe(0);
    expect(await statusCount("sent")).toBe(before + 1);
    const [row] = await t.database.sql.query<{ status_reason: string | null }>("SELECT status_reason FROM messages WHERE id = $1", [id]);
    expect(row!.status_reason).toBeNull();
  });

  test("a final report by provider id settles the message, keeps the reason and drops the job in one go", async () => {
    const id = await queued();
    await t.database.sql.query("UPDATE messages SET provider_message_id = 'pm-' || id::text WHERE id = $1", [id]);
    const result = await reportDelivery(deps(), { providerMessageId: `pm-${id}`, status: "failed", errorCode: "E21610" });
    expect(result).toEqual({ found: true, messageId: id, status: "failed", changed: true });
    const [row] = await t.database.sql.query<{ status: string; status_reason: string }>("SELECT status, status_reason FROM messages WHERE id = $1", [id]);
    expect(row).toEqual({ status: "failed", status_reason: "E21610" });
    expect(await countJobs(t.database, "message_id = $1", [id])).toBe(0);
  });

  test("a report that cannot move the status answers the standing one, unchanged, and counts nothing", async () => {
    const id = await queued();
    await reportDelivery(deps(), { messageId: id, status: "delivered" });
    const before = await statusCount("sent");
    expect(await reportDelivery(deps(), { messageId: id, status: "sent" })).toEqual({ found: true, messageId: id, status: "delivered", changed: false });
    expect(await statusCount("sent")).toBe(before);
  });

  test.each(["0", "-1", "abc", "99999999999999999999", "424242424"])("message id %p names no message", async (messageId) => {
    expect(await reportDelivery({ sql: t.database.sql }, { messageId, status: "delivered" })).toEqual({ found: false });
  });

  test("without metrics a change is still applied", async () => {
    const id = await queued();
    expect(await reportDelivery({ sql: t.database.sql }, { messageId: id, status: "undelivered" })).toEqual({ found: true, messageId: id, status: "undelivered", changed: true });
  });
});
