import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { messageDetailSchema, messageItemSchema } from "../../../src/modules/messages/model.ts";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { emailSend, get, post, smsSend, smsWebhook, UNLIMITED } from "../../helpers/messaging.ts";

/*
 * A message item is built twice: by PostgreSQL for list pages (json_build_object, to_char timestamps) and in
 * TypeScript for GET /api/messages/{id} (toMessageItem, formatTimestamp). This holds the two together.
 */
describe.each(["postgres", "embedded"] as const)("message items on %s", (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database, config: UNLIMITED });
  });
  afterAll(() => t.close());

  test.each([
    ["an sms with a millisecond timestamp in another offset", "/api/messages/sms", () => smsSend({ timestamp: "2024-11-01T09:00:00.250-05:00" })],
    ["an mms with attachments", "/api/messages/sms", () => smsSend({ type: "MMS", attachments: ["https://example.com/a.jpg", "https://example.com/b.png"] })],
    ["an email with an HTML body and whitespace to collapse", "/api/messages/email", () => emailSend({ body: "<p>hello</p>\n\n  <b>world</b>" })],
  ] as const)("%s reads the same in its conversation's list as on its own", async (_case, path, body) => {
    const sent = await post(t.app, path, body());
    expect(sent.status).toBe(202);
    const one = await get(t.app, `/api/messages/${sent.json.id}`);
    const list = await get(t.app, `/api/conversations/${sent.json.conversation_id}/messages`);
    const { attempts, provider, provider_message_id, status_reason, ...item } = one.json;
    // Only the detail shows the delivery; nothing has been handed to a provider yet.
    expect({ attempts, provider, provider_message_id, status_reason }).toEqual({ attempts: [], provider: null, provider_message_id: null, status_reason: null });
    const listed = list.json.items.find((m: { id: string }) => m.id === sent.json.id);
    expect(listed).toEqual(item);
    for (const field of ["attempts", "provider", "provider_message_id", "status_reason"]) expect(listed).not.toHaveProperty(field);
    // Both answers are exactly the documented models: no field missing, none extra, every type as declared.
    expect(messageItemSchema.strict().safeParse(listed).error).toBeUndefined();
    expect(messageDetailSchema.strict().safeParse(one.json).error).toBeUndefined();
  });

  test("an inbound message reads the same in the list as on its own", async () => {
    const hook = smsWebhook({ timestamp: "2024-02-29T23:59:59.999+01:00" });
    const sent = await post(t.app, "/api/webhooks/sms", hook);
    const { attempts: _attempts, provider, provider_message_id, status_reason, ...item } = (await get(t.app, `/api/messages/${sent.json.id}`)).json;
    expect({ provider, provider_message_id, status_reason }).toEqual({ provider: null, provider_message_id: hook.messaging_provider_id, status_reason: null });
    const list = await get(t.app, `/api/conversations/${sent.json.conversation_id}/messages`);
    expect(list.json.items.find((m: { id: string }) => m.id === sent.json.id)).toEqual(item);
    expect(item.timestamp).toBe("2024-02-29T22:59:59.999Z");
  });

  test("the detail shows the provider, its id and the reason of a failed message", async () => {
    const sent = await post(t.app, "/api/messages/sms", smsSend());
    await t.database.sql.query(
      "UPDATE messages SET status = 'failed', provider = 'sms-mms', provider_message_id = 'pm-1', status_reason = 'E30007' WHERE id = $1",
      [sent.json.id],
    );
    expect((await get(t.app, `/api/messages/${sent.json.id}`)).json).toMatchObject({
      status: "failed",
      provider: "sms-mms",
      provider_message_id: "pm-1",
      status_reason: "E30007",
    });
  });

  test("a reason left in the column is not shown once the status is not failed or undelivered", async () => {
    const sent = await post(t.app, "/api/messages/sms", smsSend());
    await t.database.sql.query("UPDATE messages SET status = 'sent', status_reason = 'stale' WHERE id = $1", [sent.json.id]);
    expect((await get(t.app, `/api/messages/${sent.json.id}`)).json).toMatchObject({ status: "sent", status_reason: null });
  });
});
