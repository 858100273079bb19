import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { countRows, emailSend, get, phone, post, smsSend, smsWebhook, UNLIMITED } from "../../helpers/messaging.ts";

// One database for the file. Every test uses its own addresses, so conversations never mix; the listing
// tests use timestamps in 2099, later than anything else here, so their conversations head the list.
let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: UNLIMITED });
});
afterAll(() => t.close());

async function send(path: string, body: Record<string, unknown>) {
  const res = await post(t.app, path, body);
  expect(res.status).toBe(202);
  return res.json as { id: string; conversation_id: string };
}

/** A conversation as GET /api/conversations lists it, walking the pages until it appears. */
async function conversation(id: string): Promise<Record<string, unknown>> {
  for (let page = 1; ; page++) {
    const res = await get(t.app, `/api/conversations?page=${page}`);
    const found = (res.json.items as { id: string }[]).find((c) => c.id === id);
    if (found) return found;
    if (res.json.items.length === 0) throw new Error(`conversation ${id} is not listed`);
  }
}

const messagesOf = async (id: string, query = "") => get(t.app, `/api/conversations/${id}/messages${query}`);

describe("conversation identity", () => {
  test("the key is sms:{a}<->{b} of the normalized phones in byte order, whoever writes first", async () => {
    const first = await send("/api/messages/sms", smsSend({ from: "+1 (201) 555-0199", to: "+1.201.555.0150", timestamp: "2098-01-01T00:00:00Z" }));
    const reply = await send("/api/webhooks/sms", smsWebhook({ from: "+12015550150", to: "+12015550199", timestamp: "2098-01-01T00:01:00Z" }));
    expect(reply.conversation_id).toBe(first.conversation_id);
    expect(await conversation(first.conversation_id)).toMatchObject({
      id: first.conversation_id,
      key: "sms:+12015550150<->+12015550199",
      channel: "sms",
      participant_a: "+12015550150",
      participant_b: "+12015550199",
      message_count: 2,
    });
  });

  test("SMS and MMS between the same two phones are one conversation on transport sms", async () => {
    const a = phone();
    const b = phone();
    const sms = await send("/api/messages/sms", smsSend({ from: a, to: b }));
    const mms = await send("/api/messages/sms", smsSend({ from: b, to: a, type: "MMS", attachments: ["https://x.example.com/p.jpg"] }));
    expect(mms.conversation_id).toBe(sms.conversation_id);
    const items = (await messagesOf(sms.conversation_id)).json.items;
    expect(items.map((m: { channel: string }) => m.channel)).toEqual(["sms", "mms"]);
    expect(await countRows(t.database, "conversations", "key = $1", [`sms:${[a, b].sort().join("<->")}`])).toBe(1);
  });

  test("a leading + keeps a number distinct from the same digits without it", async () => {
    const x = await send("/api/messages/sms", smsSend({ from: "+15550001111", to: "+15550002222" }));
    const y = await send("/api/messages/sms", smsSend({ from: "15550001111", to: "+15550002222" }));
    expect(y.conversation_id).not.toBe(x.conversation_id);
  });

  test("email addresses are lowercased and lose their +tag: User+Promo@Example.com is user@example.com", async () => {
    const first = await send("/api/messages/email", emailSend({ from: "User+Promo@Example.com", to: "Support@Shop.Example.com" }));
    const reply = await send("/api/webhooks/email", { ...emailSend({ from: "support@shop.example.com", to: "user@example.com" }), xillio_id: "norm-1" });
    expect(reply.conversation_id).toBe(first.conversation_id);
    expect(await conversation(first.conversation_id)).toMatchObject({
      key: "email:support@shop.example.com<->user@example.com",
      channel: "email",
      participant_a: "support@shop.example.com",
      participant_b: "user@example.com",
    });
    const items = (await messagesOf(first.conversation_id)).json.items;
    expect(items[0]).toMatchObject({ from: "User+Promo@Example.com", to: "Support@Shop.Example.com" });
  });

  test("participants are ordered by UTF-8 bytes, not UTF-16 code units", async () => {
    // U+FF41 is EF BD A1 in UTF-8 but sorts after the surrogate pair of U+1D4B6 (F0 9D 92 B6) in UTF-16.
    const fullwidth = "\uff41@example.com";
    const script = "\u{1d4b6}@example.com";
    const sent = await send("/api/messages/email", emailSend({ from: script, to: fullwidth }));
    expect(await conversation(sent.conversation_id)).toMatchObject({ key: `email:${fullwidth}<->${script}`, participant_a: fullwidth });
  });

  test("the same two phones on sms and two emails are separate conversations per transport", async () => {
    const sms = await send("/api/messages/sms", smsSend());
    const mail = await send("/api/messages/email", emailSend());
    expect(mail.conversation_id).not.toBe(sms.conversation_id);
  });
});

describe("message_count and last_activity_at", () => {
  test("count every message and keep the latest timestamp even when an older one arrives later", async () => {
    const from = phone();
    const to = phone();
    const c = await send("/api/messages/sms", smsSend({ from, to, timestamp: "2024-05-01T10:00:00Z" }));
    await send("/api/messages/sms", smsSend({ from, to, timestamp: "2024-05-01T12:00:00+00:00" }));
    await send("/api/webhooks/sms", smsWebhook({ from: to, to: from, timestamp: "2024-05-01T11:00:00Z" }));
    const row = await t.database.sql.query<{ message_count: number; last: string }>(
      "SELECT message_count, to_char(last_activity_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') AS last FROM conversations WHERE id = $1",
      [c.conversation_id],
    );
    expect(row).toEqual([{ message_count: 3, last: "2024-05-01T12:00:00" }]);
  });

  test("a duplicate webhook does not change message_count", async () => {
    const body = smsWebhook();
    const first = await send("/api/webhooks/sms", body);
    await send("/api/webhooks/sms", body);
    const [row] = await t.database.sql.query<{ message_count: number }>("SELECT message_count FROM conversations WHERE id = $1", [
      first.conversation_id,
    ]);
    expect(row!.message_count).toBe(1);
  });
});

describe("GET /api/conversations", () => {
  // Created in order c1..c4; last activity c3 > c1 = c2 (tie, broken by id: c2 first) > c4.
  const created: string[] = [];
  beforeAll(async () => {
    const at = ["2099-01-02T00:00:00Z", "2099-01-02T00:00:00Z", "2099-01-03T00:00:00Z", "2099-01-01T00:00:00Z"];
    for (const timestamp of at) created.push((await send("/api/messages/sms", smsSend({ timestamp }))).conversation_id);
  });

  test("items are conversations ordered by last_activity_at descending, ties by id descending", async () => {
    const [c1, c2, c3, c4] = created;
    const res = await get(t.app, "/api/conversations");
    expect(res.status).toBe(200);
    expect(res.json.items.slice(0, 4).map((c: { id: string }) => c.id)).toEqual([c3, c2, c1, c4]);
    expect(res.json.items[0]).toEqual({
      id: c3,
      key: expect.stringMatching(/^sms:\+\d+<->\+\d+$/),
      channel: "sms",
      participant_a: expect.any(String),
      participant_b: expect.any(String),
      message_count: 1,
      last_activity_at: "2099-01-03T00:00:00.000Z",
    });
  });

  test("ids are decimal strings and meta has page, page_size 50 by default, and total counts rows", async () => {
    const res = await get(t.app, "/api/conversations");
    const total = await countRows(t.database, "conversations");
    expect(res.json.meta).toEqual({ page: 1, page_size: 50, total, next_cursor: total > 50 ? expect.any(String) : null });
    for (const c of res.json.items) expect(c.id).toMatch(/^[1-9]\d*$/);
  });

  test("pageSize and page walk the same order one slice at a time", async () => {
    const [c1, c2, c3] = created;
    const p1 = await get(t.app, "/api/conversations?pageSize=2&page=1");
    const p2 = await get(t.app, "/api/conversations?pageSize=2&page=2");
    expect(p1.json.items.map((c: { id: string }) => c.id)).toEqual([c3, c2]);
    expect(p2.json.items[0].id).toBe(c1);
    expect(p2.json.meta).toEqual({ page: 2, page_size: 2, total: await countRows(t.database, "conversations"), next_cursor: expect.any(String) });
  });

  test("page_size is accepted as an alias of pageSize", async () => {
    const res = await get(t.app, "/api/conversations?page_size=3");
    expect(res.json.items).toHaveLength(3);
    expect(res.json.meta.page_size).toBe(3);
  });

  test("a page past the last answers an empty items list with the real total", async () => {
    const res = await get(t.app, "/api/conversations?page=100000&pageSize=50");
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ items: [], meta: { page: 100000, page_size: 50, total: await countRows(t.database, "conversations"), next_cursor: null } });
  });
});

describe("GET /api/conversations/{id}/messages", () => {
  let id: string;
  const ids: string[] = [];
  const from = phone();
  const to = phone();
  beforeAll(async () => {
    // Sent out of order; two share a timestamp, so their order is their ids'.
    const timestamps = ["2024-06-01T10:00:02Z", "2024-06-01T10:00:01Z", "2024-06-01T10:00:01Z", "2024-06-01T10:00:00Z"];
    for (const [i, timestamp] of timestamps.entries()) {
      const res = await send("/api/messages/sms", smsSend({ from, to, timestamp, body: `m${i}` }));
      ids.push(res.id);
      id = res.conversation_id;
    }
  });

  test("messages are ordered by timestamp ascending, ties broken by id ascending", async () => {
    const res = await messagesOf(id);
    expect(res.status).toBe(200);
    expect(res.json.items.map((m: { body: string }) => m.body)).toEqual(["m3", "m1", "m2", "m0"]);
    expect(res.json.items.map((m: { id: string }) => m.id)).toEqual([ids[3], ids[1], ids[2], ids[0]]);
    expect(res.json.meta).toEqual({ page: 1, page_size: 50, total: 4, next_cursor: null });
  });

  test("a message item has the contract's fields, ids as decimal strings", async () => {
    const res = await messagesOf(id);
    expect(res.json.items[0]).toEqual({
      id: ids[3],
      conversation_id: id,
      direction: "outbound",
      channel: "sms",
      type: "sms",
      from,
      to,
      body: "m3",
      snippet: "m3",
      attachments: [],
      status: "queued",
      timestamp: "2024-06-01T10:00:00.000Z",
      send_at: null,
      subject: null,
      segments: 1,
      encoding: "GSM-7",
    });
  });

  test.each([
    ["page=0", 1, 50],
    ["page=-3", 1, 50],
    ["pageSize=0", 1, 50],
    ["pageSize=51", 1, 50],
    ["pageSize=500", 1, 50],
    ["pageSize=-1", 1, 50],
    ["page_size=2", 1, 2],
    ["page=2&page_size=3", 2, 3],
    ["", 1, 50],
    ["page=9999999999", 1_000_000_000, 50],
    [`page=${"9".repeat(400)}`, 1_000_000_000, 50],
    ["page=-9999999999", 1, 50],
    ["pageSize=99999999999999999999", 1, 50],
  ])("?%s is read as page %i, page_size %i", async (query, page, pageSize) => {
    const res = await messagesOf(id, `?${query}`);
    expect(res.status).toBe(200);
    expect(res.json.meta).toEqual({ page, page_size: pageSize, total: 4, next_cursor: page * pageSize < 4 ? expect.any(String) : null });
    expect(res.json.items).toHaveLength(Math.max(0, Math.min(pageSize, 4 - (page - 1) * pageSize)));
  });

  test("the second page of size 3 holds the fourth message; the third page is an empty list", async () => {
    expect((await messagesOf(id, "?page=2&pageSize=3")).json.items.map((m: { id: string }) => m.id)).toEqual([ids[0]]);
    const past = await messagesOf(id, "?page=3&pageSize=3");
    expect(past.json).toEqual({ items: [], meta: { page: 3, page_size: 3, total: 4, next_cursor: null } });
  });

  test.each(["page=abc", "page=1.5", "pageSize=ten", "page_size=2.0", "pageSize=1e3", "page="])(
    "?%s is a 400 validation_failed naming the parameter",
    async (query) => {
      const res = await messagesOf(id, `?${query}`);
      expect(res.status).toBe(400);
      expect(res.json.code).toBe("validation_failed");
      const name = query.split("=")[0]!;
      expect(res.json.details).toContainEqual({ path: `query.${name}`, message: expect.any(String) });
      expect(res.json.message).toContain(name);
    },
  );

  test("a non-integer page on the conversation list is a 400 too", async () => {
    const res = await get(t.app, "/api/conversations?pageSize=x");
    expect(res.status).toBe(400);
    expect(res.json.details[0].path).toBe("query.pageSize");
  });

  test("pageSize above 50 is capped at 50 items on a conversation with 55 messages", async () => {
    const a = phone();
    const b = phone();
    let conv = "";
    for (let i = 0; i < 55; i++) conv = (await send("/api/messages/sms", smsSend({ from: a, to: b, body: `n${i}` }))).conversation_id;
    const capped = await messagesOf(conv, "?pageSize=100");
    expect(capped.json.items).toHaveLength(50);
    expect(capped.json.meta).toEqual({ page: 1, page_size: 50, total: 55, next_cursor: expect.any(String) });
    const second = await messagesOf(conv, "?page=2");
    expect(second.json.items.map((m: { body: string }) => m.body)).toEqual(["n50", "n51", "n52", "n53", "n54"]);
  });

  test.each(["999999999", "abc", "0", "-1"])("conversation %p does not exist: 404 not_found", async (missing) => {
    const res = await messagesOf(missing);
    expect(res.status).toBe(404);
    expect(res.json).toEqual({ code: "not_found", message: expect.any(String), request_id: expect.any(String) });
  });
});

describe("snippet", () => {
  const bodyOf = async (conversationId: string) => (await messagesOf(conversationId)).json.items[0];

  test("collapses every run of whitespace to one space and trims", async () => {
    const res = await send("/api/messages/sms", smsSend({ body: "  hello \n\n  world\t\tagain \u00a0 " }));
    const item = await bodyOf(res.conversation_id);
    expect(item.snippet).toBe("hello world again");
    expect(item.body).toBe("  hello \n\n  world\t\tagain \u00a0 ");
  });

  test("cuts at 64 grapheme clusters, keeping a skin-toned emoji whole", async () => {
    const res = await send("/api/messages/sms", smsSend({ body: "👍🏽".repeat(70) }));
    expect((await bodyOf(res.conversation_id)).snippet).toBe("👍🏽".repeat(64));
  });

  test("a family emoji counts as one character", async () => {
    const family = "👨‍👩‍👧‍👦";
    const body = `${"a".repeat(63)}${family}bc`;
    const res = await send("/api/messages/email", emailSend({ body }));
    expect((await bodyOf(res.conversation_id)).snippet).toBe(`${"a".repeat(63)}${family}`);
  });

  test("a body of exactly 64 characters is its own snippet", async () => {
    const body = "x".repeat(64);
    const res = await send("/api/messages/sms", smsSend({ body }));
    expect((await bodyOf(res.conversation_id)).snippet).toBe(body);
  });

  test("the length follows snippetLength (CONVERSATION_SNIPPET_LENGTH), on messages and on GET /api/messages/{id}", async () => {
    const short = await buildTestApp({ database: t.database, config: { ...UNLIMITED, snippetLength: 5 } });
    const res = await post(short.app, "/api/messages/sms", smsSend({ body: "👍🏽 hello world" }));
    const list = await get(short.app, `/api/conversations/${res.json.conversation_id}/messages`);
    expect(list.json.items[0].snippet).toBe("👍🏽 hel");
    expect((await get(short.app, `/api/messages/${res.json.id}`)).json.snippet).toBe("👍🏽 hel");
    // The default app still answers 64.
    expect((await get(t.app, `/api/messages/${res.json.id}`)).json.snippet).toBe("👍🏽 hello world");
  });
});
