import { afterAll, beforeAll, describe, expect, test } from "bun:test";
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
    const { attempts, ...item } = one.json;
    expect(attempts).toEqual([]);
    expect(list.json.items.find((m: { id: string }) => m.id === sent.json.id)).toEqual(item);
  });

  test("an inbound message reads the same in the list as on its own", async () => {
    const sent = await post(t.app, "/api/webhooks/sms", smsWebhook({ timestamp: "2024-02-29T23:59:59.999+01:00" }));
    const { attempts: _attempts, ...item } = (await get(t.app, `/api/messages/${sent.json.id}`)).json;
    const list = await get(t.app, `/api/conversations/${sent.json.conversation_id}/messages`);
    expect(list.json.items.find((m: { id: string }) => m.id === sent.json.id)).toEqual(item);
    expect(item.timestamp).toBe("2024-02-29T22:59:59.999Z");
  });
});
