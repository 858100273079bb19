import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { concurrently, countJobs, countRows, emailSend, get, phone, post, smsSend, UNLIMITED } from "../../helpers/messaging.ts";

// One fresh PostgreSQL database for the file; the first test relies on it being empty.
let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: UNLIMITED });
});
afterAll(() => t.close());

const ACCEPTED = { status: "accepted", id: expect.stringMatching(/^[1-9]\d*$/), conversation_id: expect.stringMatching(/^[1-9]\d*$/) };

describe("POST /api/messages/sms", () => {
  test("on a fresh database the first send answers 202 with message id \"1\" and conversation id \"1\"", async () => {
    const res = await post(t.app, "/api/messages/sms", smsSend());
    expect(res.status).toBe(202);
    expect(res.headers.get("content-type")).toStartWith("application/json");
    expect(res.json).toEqual({ status: "accepted", id: "1", conversation_id: "1" });
  });

  test("accepts an sms and stores it outbound, queued, with the addresses as written", async () => {
    const from = "+1 (201) 555-0100";
    const res = await post(t.app, "/api/messages/sms", smsSend({ from, to: "+12015550101", body: "hi there" }));
    expect(res.status).toBe(202);
    expect(res.json).toEqual(ACCEPTED);
    const msg = await get(t.app, `/api/messages/${res.json.id}`);
    expect(msg.status).toBe(200);
    expect(msg.json).toMatchObject({
      id: res.json.id,
      conversation_id: res.json.conversation_id,
      direction: "outbound",
      channel: "sms",
      type: "sms",
      from,
      to: "+12015550101",
      body: "hi there",
      snippet: "hi there",
      attachments: [],
      status: "queued",
      timestamp: "2024-11-01T14:00:00.000Z",
      attempts: [],
    });
  });

  test.each(["MMS", "mms", " Mms "])("type %p is read case-insensitively as mms, with its attachments kept", async (type) => {
    const attachments = ["https://cdn.example.com/a.jpg", "http://cdn.example.com/b.png?x=1"];
    const res = await post(t.app, "/api/messages/sms", smsSend({ type, attachments }));
    expect(res.status).toBe(202);
    const msg = await get(t.app, `/api/messages/${res.json.id}`);
    expect(msg.json).toMatchObject({ channel: "mms", type: "mms", attachments });
  });

  test("type SMS in capitals is an sms", async () => {
    const res = await post(t.app, "/api/messages/sms", smsSend({ type: "SMS" }));
    expect(res.status).toBe(202);
    expect((await get(t.app, `/api/messages/${res.json.id}`)).json.channel).toBe("sms");
  });

  test("a timestamp with an offset is stored and answered in UTC with Z", async () => {
    const res = await post(t.app, "/api/messages/sms", smsSend({ timestamp: "2024-11-01T16:30:00.250+02:30" }));
    expect((await get(t.app, `/api/messages/${res.json.id}`)).json.timestamp).toBe("2024-11-01T14:00:00.250Z");
  });
});

describe("POST /api/messages/email", () => {
  test("stores an HTML body verbatim and answers 202 with decimal string ids", async () => {
    const body = '<html><body><p class="x">Hi &amp; <b>welcome</b></p>\n<script>alert(1)</script>  </body></html>';
    const res = await post(t.app, "/api/messages/email", emailSend({ body }));
    expect(res.status).toBe(202);
    expect(res.json).toEqual(ACCEPTED);
    const msg = await get(t.app, `/api/messages/${res.json.id}`);
    expect(msg.json).toMatchObject({ channel: "email", type: "email", direction: "outbound", status: "queued", body, attachments: [] });
  });

  test("an email with attachments keeps them in order", async () => {
    const attachments = ["https://files.example.com/1.pdf", "https://files.example.com/2.pdf"];
    const res = await post(t.app, "/api/messages/email", emailSend({ attachments }));
    expect((await get(t.app, `/api/messages/${res.json.id}`)).json.attachments).toEqual(attachments);
  });
});

describe("GET /api/messages/{id}", () => {
  test.each(["999999999", "abc", "0", "-1", "1.5", "01"])("id %p names no message: 404 not_found envelope", async (id) => {
    const res = await get(t.app, `/api/messages/${id}`);
    expect(res.status).toBe(404);
    expect(res.json).toEqual({ code: "not_found", message: expect.any(String), request_id: expect.any(String) });
  });
});

describe("durable acknowledgement", () => {
  test("after a 202 the outbound message is committed with its delivery job", async () => {
    const res = await post(t.app, "/api/messages/sms", smsSend({ body: "durable" }));
    expect(res.status).toBe(202);
    const rows = await t.database.sql.query<{ conversation_id: string; direction: string; status: string; body: string }>(
      "SELECT conversation_id::text, direction, status, body FROM messages WHERE id = $1",
      [res.json.id],
    );
    expect(rows).toEqual([{ conversation_id: res.json.conversation_id, direction: "outbound", status: "queued", body: "durable" }]);
    expect(await countJobs(t.database, "message_id = $1", [res.json.id])).toBe(1);
    expect(await countRows(t.database, "conversations", "id = $1", [res.json.conversation_id])).toBe(1);
  });

  test("after a 202 an outbound email has its delivery job too", async () => {
    const res = await post(t.app, "/api/messages/email", emailSend());
    expect(await countJobs(t.database, "message_id = $1", [res.json.id])).toBe(1);
  });

  test("an inbound webhook message is committed with status received and no delivery job", async () => {
    const res = await post(t.app, "/api/webhooks/sms", { ...smsSend(), messaging_provider_id: `durable-${crypto.randomUUID()}` });
    expect(res.status).toBe(202);
    const rows = await t.database.sql.query<{ direction: string; status: string }>(
      "SELECT direction, status FROM messages WHERE id = $1",
      [res.json.id],
    );
    expect(rows).toEqual([{ direction: "inbound", status: "received" }]);
    expect(await countJobs(t.database, "message_id = $1", [res.json.id])).toBe(0);
  });

  test("every message answered 202 so far has exactly one row, and every outbound one exactly one job", async () => {
    const orphans = await t.database.sql.query(
      `SELECT m.id FROM messages m WHERE (m.direction = 'outbound') <> (m.run_at IS NOT NULL)`,
    );
    expect(orphans).toEqual([]);
  });
});

describe("concurrency", () => {
  test("100 concurrent first messages between a new pair: 100 × 202, one conversation, message_count 100", async () => {
    const a = phone();
    const b = phone();
    const responses = await concurrently(100, (i) =>
      post(t.app, "/api/messages/sms", smsSend({ from: i % 2 ? a : b, to: i % 2 ? b : a, body: `race ${i}` })),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(100).fill(202));
    const conversationIds = new Set(responses.map((r) => r.json.conversation_id));
    expect(conversationIds.size).toBe(1);
    expect(new Set(responses.map((r) => r.json.id)).size).toBe(100);
    const [id] = [...conversationIds];
    const [row] = await t.database.sql.query<{ message_count: number }>("SELECT message_count FROM conversations WHERE id = $1", [id]);
    expect(row!.message_count).toBe(100);
    expect(await countRows(t.database, "messages", "conversation_id = $1", [id])).toBe(100);
    expect(await countJobs(t.database, "message_id IN (SELECT id FROM messages WHERE conversation_id = $1)", [id])).toBe(100);
  });
});
