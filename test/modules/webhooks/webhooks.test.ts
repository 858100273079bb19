import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { concurrently, countRows, emailWebhook, get, phone, post, smsWebhook, UNLIMITED } from "../../helpers/messaging.ts";

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: UNLIMITED });
});
afterAll(() => t.close());

const ACCEPTED = { status: "accepted", id: expect.stringMatching(/^[1-9]\d*$/), conversation_id: expect.stringMatching(/^[1-9]\d*$/) };
const messageCount = async (conversationId: string) =>
  (await t.database.sql.query<{ n: number }>("SELECT message_count AS n FROM conversations WHERE id = $1", [conversationId]))[0]!.n;

describe("POST /api/webhooks/sms", () => {
  test("stores an inbound sms with status received and answers 202 with decimal string ids", async () => {
    const body = smsWebhook({ type: "SMS", body: "incoming" });
    const res = await post(t.app, "/api/webhooks/sms", body);
    expect(res.status).toBe(202);
    expect(res.json).toEqual(ACCEPTED);
    const msg = await get(t.app, `/api/messages/${res.json.id}`);
    expect(msg.json).toMatchObject({
      direction: "inbound",
      status: "received",
      channel: "sms",
      from: body.from,
      to: body.to,
      body: "incoming",
      attachments: [],
      attempts: [],
    });
  });

  test("stores an inbound mms with its attachments", async () => {
    const attachments = ["https://media.example.com/1.jpg"];
    const res = await post(t.app, "/api/webhooks/sms", smsWebhook({ type: "mms", attachments }));
    expect(res.status).toBe(202);
    expect((await get(t.app, `/api/messages/${res.json.id}`)).json).toMatchObject({ channel: "mms", attachments, direction: "inbound" });
  });

  test("stores the provider id given as messaging_provider_id", async () => {
    const res = await post(t.app, "/api/webhooks/sms", smsWebhook({ messaging_provider_id: "SM-stored-1" }));
    const [row] = await t.database.sql.query<{ provider_message_id: string }>("SELECT provider_message_id FROM messages WHERE id = $1", [
      res.json.id,
    ]);
    expect(row!.provider_message_id).toBe("SM-stored-1");
  });
});

describe("POST /api/webhooks/email", () => {
  test("stores an inbound email with status received, HTML body verbatim", async () => {
    const html = "<div>Reply &gt; quoted<br/></div>";
    const res = await post(t.app, "/api/webhooks/email", emailWebhook({ body: html }));
    expect(res.status).toBe(202);
    expect(res.json).toEqual(ACCEPTED);
    expect((await get(t.app, `/api/messages/${res.json.id}`)).json).toMatchObject({
      direction: "inbound",
      status: "received",
      channel: "email",
      body: html,
    });
  });
});

describe("deduplication of (transport, provider id)", () => {
  test("a repeated sms webhook answers 202 with the first id and stores nothing new", async () => {
    const body = smsWebhook();
    const first = await post(t.app, "/api/webhooks/sms", body);
    const before = await countRows(t.database, "messages");
    const again = await post(t.app, "/api/webhooks/sms", body);
    expect(again.status).toBe(202);
    expect(again.json).toEqual({ status: "accepted", id: first.json.id, conversation_id: first.json.conversation_id, duplicate: true });
    expect(await countRows(t.database, "messages")).toBe(before);
    expect(await messageCount(first.json.conversation_id)).toBe(1);
  });

  test("the repeat is recognised by provider id alone, even when the provider resends a different body", async () => {
    const first = await post(t.app, "/api/webhooks/sms", smsWebhook({ messaging_provider_id: "resent-1", body: "v1" }));
    const again = await post(t.app, "/api/webhooks/sms", smsWebhook({ messaging_provider_id: "resent-1", body: "v2" }));
    expect(again.json.id).toBe(first.json.id);
    expect((await get(t.app, `/api/messages/${first.json.id}`)).json.body).toBe("v1");
  });

  test("a repeated email webhook (same xillio_id) answers the first id", async () => {
    const body = emailWebhook();
    const first = await post(t.app, "/api/webhooks/email", body);
    const again = await post(t.app, "/api/webhooks/email", body);
    expect(again.status).toBe(202);
    expect(again.json.id).toBe(first.json.id);
    expect(await countRows(t.database, "messages", "provider_message_id = $1", [body.xillio_id])).toBe(1);
  });

  test("the same provider id on the sms and on the email transport are two different messages", async () => {
    const providerId = `shared-${crypto.randomUUID()}`;
    const sms = await post(t.app, "/api/webhooks/sms", smsWebhook({ messaging_provider_id: providerId }));
    const mail = await post(t.app, "/api/webhooks/email", emailWebhook({ xillio_id: providerId }));
    expect(sms.status).toBe(202);
    expect(mail.status).toBe(202);
    expect(mail.json.id).not.toBe(sms.json.id);
    expect(await countRows(t.database, "messages", "provider_message_id = $1", [providerId])).toBe(2);
  });

  test("sms and mms share the sms transport, so an mms repeating an sms's provider id is a duplicate", async () => {
    const providerId = `sms-mms-${crypto.randomUUID()}`;
    const sms = await post(t.app, "/api/webhooks/sms", smsWebhook({ messaging_provider_id: providerId }));
    const mms = await post(
      t.app,
      "/api/webhooks/sms",
      smsWebhook({ messaging_provider_id: providerId, type: "mms", attachments: ["https://x.example.com/1.png"] }),
    );
    expect(mms.json.id).toBe(sms.json.id);
    // README: a repeat answers the first message's ids with an extra "duplicate": true; the first has none.
    expect(mms.json).toEqual({ ...sms.json, duplicate: true });
    expect(sms.json.duplicate).toBeUndefined();
  });

  test("10 concurrent deliveries of one provider id: all 202 with the same id, one message, message_count 1", async () => {
    const body = smsWebhook({ from: phone(), to: phone() });
    const responses = await concurrently(10, () => post(t.app, "/api/webhooks/sms", body));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(202));
    expect(new Set(responses.map((r) => r.json.id)).size).toBe(1);
    expect(await countRows(t.database, "messages", "provider_message_id = $1", [body.messaging_provider_id])).toBe(1);
    expect(await messageCount(responses[0]!.json.conversation_id)).toBe(1);
  });

  test("two deliveries with distinct provider ids are two messages, even with the same content", async () => {
    const same = smsWebhook();
    const a = await post(t.app, "/api/webhooks/sms", same);
    const b = await post(t.app, "/api/webhooks/sms", { ...same, messaging_provider_id: `${same.messaging_provider_id}-2` });
    expect(b.json.id).not.toBe(a.json.id);
    expect(b.json.conversation_id).toBe(a.json.conversation_id);
    expect(await messageCount(a.json.conversation_id)).toBe(2);
  });
});
