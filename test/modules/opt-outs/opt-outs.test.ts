/**
 * SMS opt-out (issue 9): an inbound SMS/MMS whose whole body is a STOP keyword opts its sender out of messages from
 * the number it was sent to, START/UNSTOP/YES opts them back in, and a send to an opted-out recipient is refused
 * with 422 `recipient_opted_out` having stored nothing, on the single, the batched and the keyed send paths.
 * `GET /api/opt-outs` lists what is recorded. The delivery side (Twilio 21610) is in test/delivery/opt-out-delivery.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SendBatcher } from "../../../src/modules/messages/send-batcher.ts";
import { newMessage } from "../../../src/modules/messages/write.ts";
import { createApiKey } from "../../../src/security/api-keys.ts";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { countJobs, countRows, email, emailSend, emailWebhook, get, metricValue, phone, post, smsSend, smsWebhook, TS, UNLIMITED } from "../../helpers/messaging.ts";

const MEDIA = ["https://media.example.com/1.jpg"];

/** `+12015550123` as a person might type it: `+1 (201) 555-0123`. */
const formatted = (p: string) => `${p.slice(0, 2)} (${p.slice(2, 5)}) ${p.slice(5, 8)}-${p.slice(8)}`;

describe.each(["postgres", "embedded"] as const)("opt-outs on %s", (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database, config: UNLIMITED });
  });
  afterAll(() => t.close());

  /** The person (`them`) texts `body` to our number (`us`). */
  const reply = (them: string, us: string, body: string, extra: Record<string, unknown> = {}) =>
    post(t.app, "/api/webhooks/sms", smsWebhook({ from: them, to: us, body, ...extra }));
  /** We text the person. */
  const send = (us: string, them: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
    post(t.app, "/api/messages/sms", smsSend({ from: us, to: them, ...extra }), headers);
  const optOutRows = (us: string) =>
    t.database.sql.query<{ from_addr: string; to_addr: string; source: string; reason: string; message_id: string | null }>(
      "SELECT from_addr, to_addr, source, reason, message_id::text AS message_id FROM opt_outs WHERE from_addr = $1",
      [us],
    );
  const metrics = async () => await t.metrics.registry.metrics();

  test.each([
    ["STOP", "STOP"],
    ["stop", "STOP"],
    ["  Stop  ", "STOP"],
    ["STOPALL", "STOPALL"],
    ["unsubscribe", "UNSUBSCRIBE"],
    ["\tCancel\r\n", "CANCEL"],
    ["END", "END"],
    ["quit", "QUIT"],
    ["ReVoKe", "REVOKE"],
    ["optout", "OPTOUT"],
    ["\u00a0STOP\u00a0", "STOP"],
  ])("an inbound %j opts the sender out of the number it was sent to, and a send there is then refused", async (body, reason) => {
    const us = phone();
    const them = phone();
    const inbound = await reply(them, us, body);
    expect(inbound.status).toBe(202);
    expect(await optOutRows(us)).toEqual([{ from_addr: us, to_addr: them, source: "inbound", reason, message_id: inbound.json.id }]);
    const refused = await send(us, them);
    expect(refused.status).toBe(422);
    expect(refused.json.code).toBe("recipient_opted_out");
  });

  test("a STOP injected through the mock provider's inbound route opts out like a webhook", async () => {
    const us = phone();
    const them = phone();
    const res = await post(t.app, "/api/provider/mock/inbound", { channel: "sms", from: them, to: us, body: "stop", timestamp: TS });
    expect(res.status).toBe(202);
    expect(await optOutRows(us)).toEqual([{ from_addr: us, to_addr: them, source: "inbound", reason: "STOP", message_id: res.json.id }]);
    expect((await send(us, them)).status).toBe(422);
  });

  test("the keyword message itself is stored as usual", async () => {
    const us = phone();
    const them = phone();
    const inbound = await reply(them, us, " stop ");
    const stored = await get(t.app, `/api/messages/${inbound.json.id}`);
    expect(stored.json).toMatchObject({ direction: "inbound", status: "received", body: " stop ", from: them, to: us });
  });

  test("the opt-out names both numbers normalized: a STOP from a formatted number refuses sends written either way", async () => {
    const us = phone();
    const them = phone();
    expect((await reply(formatted(them), formatted(us), "STOP")).status).toBe(202);
    expect(await optOutRows(us)).toMatchObject([{ from_addr: us, to_addr: them }]);
    expect((await send(us, them)).status).toBe(422);
    expect((await send(formatted(us), formatted(them))).status).toBe(422);
  });

  test.each(["stop please", "please stop", "STOP!", "Stop.", "OPT OUT", "STOP STOP", "ＳＴＯＰ", "stopp", "yes stop"])(
    "%j is an ordinary message: nobody is opted out",
    async (body) => {
      const us = phone();
      const them = phone();
      expect((await reply(them, us, body)).status).toBe(202);
      expect(await optOutRows(us)).toEqual([]);
      expect((await send(us, them)).status).toBe(202);
    },
  );

  test.each(["START", "unstop", " Yes "])("%j after STOP opts the sender back in: the row goes and sends are accepted again", async (word) => {
    const us = phone();
    const them = phone();
    await reply(them, us, "STOP");
    expect((await send(us, them)).status).toBe(422);
    expect((await reply(them, us, word)).status).toBe(202);
    expect(await optOutRows(us)).toEqual([]);
    expect((await send(us, them)).status).toBe(202);
  });

  test("START without an opt-out changes nothing, and STOP after START opts out again", async () => {
    const us = phone();
    const them = phone();
    expect((await reply(them, us, "START")).status).toBe(202);
    expect((await send(us, them)).status).toBe(202);
    await reply(them, us, "STOP");
    expect((await send(us, them)).status).toBe(422);
  });

  test("an MMS whose whole text is a keyword counts like an SMS, and an MMS send is refused like an SMS", async () => {
    const us = phone();
    const them = phone();
    expect((await reply(them, us, "Unsubscribe", { type: "mms", attachments: MEDIA })).status).toBe(202);
    expect(await optOutRows(us)).toMatchObject([{ reason: "UNSUBSCRIBE" }]);
    const refused = await send(us, them, { type: "mms", attachments: MEDIA });
    expect(refused.status).toBe(422);
    expect(refused.json.code).toBe("recipient_opted_out");
    await reply(them, us, "yes", { type: "mms", attachments: MEDIA });
    expect((await send(us, them, { type: "mms", attachments: MEDIA })).status).toBe(202);
  });

  test("an email whose body is STOP opts nobody out, and emails are never refused", async () => {
    const us = email("us");
    const them = email("them");
    const before = await countRows(t.database, "opt_outs");
    expect((await post(t.app, "/api/webhooks/email", emailWebhook({ from: them, to: us, body: "STOP" }))).status).toBe(202);
    expect(await countRows(t.database, "opt_outs")).toBe(before);
    expect((await post(t.app, "/api/messages/email", emailSend({ from: us, to: them }))).status).toBe(202);
  });

  test("a refused send answers the error envelope and stores nothing: no message, no job, no conversation change", async () => {
    const us = phone();
    const them = phone();
    const inbound = await reply(them, us, "STOP");
    const counts = async () => ({
      messages: await countRows(t.database, "messages"),
      jobs: await countJobs(t.database),
      conversations: await countRows(t.database, "conversations"),
      inConversation: await countRows(t.database, "messages", "conversation_id = $1", [inbound.json.conversation_id]),
    });
    const before = await counts();
    const conversationBefore = (await get(t.app, "/api/conversations")).json.items.find((c: { id: string }) => c.id === inbound.json.conversation_id);

    const refused = await send(us, them, { body: "a promotion" });
    expect(refused.status).toBe(422);
    expect(refused.json).toEqual({
      code: "recipient_opted_out",
      message: expect.stringContaining("opted out"),
      request_id: expect.any(String),
      details: [{ path: "to", message: "has opted out of messages from this sender" }],
    });
    expect(await counts()).toEqual(before);
    const conversationAfter = (await get(t.app, "/api/conversations")).json.items.find((c: { id: string }) => c.id === inbound.json.conversation_id);
    expect(conversationAfter).toEqual(conversationBefore);
    expect(await countRows(t.database, "messages", "body = 'a promotion' AND from_addr = $1", [us])).toBe(0);
  });

  test("a refused send to a new pair creates no conversation", async () => {
    const us = phone();
    const them = phone();
    // A provider's report is the other way an opt-out exists without any message between the two in this database.
    await t.database.sql.query("INSERT INTO opt_outs (from_addr, to_addr, source, reason) VALUES ($1, $2, 'provider', 'twilio 21610')", [us, them]);
    const conversations = await countRows(t.database, "conversations");
    expect((await send(us, them)).status).toBe(422);
    expect(await countRows(t.database, "conversations")).toBe(conversations);
  });

  test("only the pair is blocked: other senders still reach the person, the sender still reaches others, and the person can still write", async () => {
    const us = phone();
    const otherOfOurs = phone();
    const them = phone();
    const someoneElse = phone();
    await reply(them, us, "STOP");
    expect((await send(us, them)).status).toBe(422);
    expect((await send(otherOfOurs, them)).status).toBe(202);
    expect((await send(us, someoneElse)).status).toBe(202);
    // The reverse direction is not an opt-out of the person's own number.
    expect((await send(them, us)).status).toBe(202);
    expect((await reply(them, us, "what is this about?")).status).toBe(202);
  });

  test("a repeated STOP keeps the first opt-out; a redelivered STOP after START does not opt out again", async () => {
    const us = phone();
    const them = phone();
    const first = await reply(them, us, "STOP", { messaging_provider_id: `stop-${us}` });
    await reply(them, us, "QUIT");
    expect(await optOutRows(us)).toMatchObject([{ reason: "STOP", message_id: first.json.id }]);
    await reply(them, us, "START");
    // The provider delivers the first STOP again: a duplicate is stored and applied once only.
    const again = await reply(them, us, "STOP", { messaging_provider_id: `stop-${us}` });
    expect(again.json).toMatchObject({ id: first.json.id, duplicate: true });
    expect(await optOutRows(us)).toEqual([]);
    expect((await send(us, them)).status).toBe(202);
  });

  test("batched sends: the refused ones are answered null in place and the others stored, in one statement", async () => {
    const us = phone();
    const blocked = phone();
    await reply(blocked, us, "STOP");
    const sizes: number[] = [];
    const batcher = new SendBatcher(t.database.sql, { maxInFlight: 1, maxBatch: 256, observe: { batch: (n) => sizes.push(n) } });
    const messages = Array.from({ length: 21 }, (_, i) =>
      i % 3 === 1
        ? newMessage({ channel: "sms", from: formatted(us), to: blocked, body: `batch ${us} ${i}`, attachments: [], timestamp: TS }, "outbound", null)
        : i % 3 === 2
          ? newMessage({ channel: "email", from: email(), to: email(), body: `batch ${us} ${i}`, attachments: [], timestamp: TS }, "outbound", null)
          : newMessage({ channel: "sms", from: us, to: phone(), body: `batch ${us} ${i}`, attachments: [], timestamp: TS }, "outbound", null),
    );
    const results = await Promise.all(messages.map((m) => batcher.submit(m)));
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    results.forEach((r, i) => (i % 3 === 1 ? expect(r).toBeNull() : expect(r).toEqual({ id: expect.any(String), conversation_id: expect.any(String) })));
    const stored = await t.database.sql.query<{ body: string }>("SELECT body FROM messages WHERE body LIKE $1 ORDER BY id", [`batch ${us} %`]);
    expect(stored.map((r) => r.body).sort()).toEqual(messages.filter((_, i) => i % 3 !== 1).map((m) => m.body).sort());
    expect(await countJobs(t.database, "message_id IN (SELECT id FROM messages WHERE body LIKE $1)", [`batch ${us} %`])).toBe(14);
  });

  test("concurrent HTTP sends: every refused one is 422, every other 202 with its own message", async () => {
    const us = phone();
    const blocked = phone();
    await reply(blocked, us, "STOP");
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => send(us, i % 2 === 0 ? blocked : phone(), { body: `concurrent ${us} ${i}` })),
    );
    answers.forEach((res, i) => expect(res.status).toBe(i % 2 === 0 ? 422 : 202));
    expect(await countRows(t.database, "messages", "body LIKE $1", [`concurrent ${us} %`])).toBe(15);
  });

  test("Idempotency-Key: a refused send is not stored as an answer, so the same key sends once the person opts back in", async () => {
    const us = phone();
    const them = phone();
    await reply(them, us, "STOP");
    const key = { "idempotency-key": `opt-${us}` };
    const body = smsSend({ from: us, to: them, body: "keyed" });
    const first = await post(t.app, "/api/messages/sms", body, key);
    expect(first.status).toBe(422);
    expect(first.json.code).toBe("recipient_opted_out");
    expect(await countRows(t.database, "idempotency_keys", "key = $1", [`opt-${us}`])).toBe(0);
    const again = await post(t.app, "/api/messages/sms", body, key);
    expect(again.status).toBe(422);
    expect(again.headers.get("idempotent-replayed")).toBeNull();

    await reply(them, us, "START");
    const sent = await post(t.app, "/api/messages/sms", body, key);
    expect(sent.status).toBe(202);
    const replay = await post(t.app, "/api/messages/sms", body, key);
    expect(replay.status).toBe(202);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.json.id).toBe(sent.json.id);
    expect(await countRows(t.database, "messages", "body = 'keyed' AND from_addr = $1", [us])).toBe(1);
  });

  test("a send stored before the STOP is replayed as it was: the opt-out refuses new sends only", async () => {
    const us = phone();
    const them = phone();
    const key = { "idempotency-key": `before-${us}` };
    const body = smsSend({ from: us, to: them });
    const sent = await post(t.app, "/api/messages/sms", body, key);
    await reply(them, us, "STOP");
    const replay = await post(t.app, "/api/messages/sms", body, key);
    expect(replay.status).toBe(202);
    expect(replay.json.id).toBe(sent.json.id);
  });

  test("opt-outs, opt-ins and refused sends are counted in /metrics", async () => {
    const text = await metrics();
    const stops = metricValue(text, "messaging_opt_outs_total", { action: "stop", source: "inbound" });
    const starts = metricValue(text, "messaging_opt_outs_total", { action: "start", source: "inbound" });
    const refused = metricValue(text, "messaging_sends_refused_total", { reason: "recipient_opted_out" });
    const us = phone();
    const them = phone();
    await reply(them, us, "STOP");
    await send(us, them);
    await send(us, them);
    await reply(them, us, "START");
    const after = await metrics();
    expect(metricValue(after, "messaging_opt_outs_total", { action: "stop", source: "inbound" })).toBe(stops + 1);
    expect(metricValue(after, "messaging_opt_outs_total", { action: "start", source: "inbound" })).toBe(starts + 1);
    expect(metricValue(after, "messaging_sends_refused_total", { reason: "recipient_opted_out" })).toBe(refused + 2);
  });

  describe("GET /api/opt-outs", () => {
    const us = phone();
    const people = Array.from({ length: 5 }, () => phone());
    beforeAll(async () => {
      // One at a time, so that created_at orders them as sent.
      for (const person of people) expect((await reply(person, us, "STOP")).status).toBe(202);
    });

    test("lists the sender's opt-outs newest first, with the item fields", async () => {
      const res = await get(t.app, `/api/opt-outs?from=${encodeURIComponent(us)}`);
      expect(res.status).toBe(200);
      expect(res.json.items.map((i: { to: string }) => i.to)).toEqual([...people].reverse());
      expect(res.json.items[0]).toEqual({
        from: us,
        to: people.at(-1),
        source: "inbound",
        reason: "STOP",
        message_id: expect.stringMatching(/^[1-9]\d*$/),
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      });
      expect(res.json.meta).toEqual({ page: 1, page_size: 50, total: 5, next_cursor: null });
    });

    test("filters by recipient, and by both, comparing normalized numbers", async () => {
      const byTo = await get(t.app, `/api/opt-outs?to=${encodeURIComponent(formatted(people[2]!))}`);
      expect(byTo.json.items).toMatchObject([{ from: us, to: people[2] }]);
      expect(byTo.json.meta.total).toBe(1);
      const both = await get(t.app, `/api/opt-outs?from=${encodeURIComponent(formatted(us))}&to=${encodeURIComponent(people[3]!)}`);
      expect(both.json.items).toMatchObject([{ from: us, to: people[3] }]);
      const none = await get(t.app, `/api/opt-outs?from=${encodeURIComponent(people[3]!)}&to=${encodeURIComponent(us)}`);
      expect(none.json).toEqual({ items: [], meta: { page: 1, page_size: 50, total: 0, next_cursor: null } });
    });

    test("pages by page and pageSize", async () => {
      const q = `from=${encodeURIComponent(us)}&pageSize=2`;
      const pages = await Promise.all([1, 2, 3, 4].map((p) => get(t.app, `/api/opt-outs?${q}&page=${p}`)));
      expect(pages.map((p) => p.json.items.map((i: { to: string }) => i.to))).toEqual([
        [people[4], people[3]],
        [people[2], people[1]],
        [people[0]],
        [],
      ]);
      expect(pages[1]!.json.meta).toMatchObject({ page: 2, page_size: 2, total: 5 });
      expect(pages[2]!.json.meta.next_cursor).toBeNull();
    });

    test("pages by cursor to the end, and refuses a cursor of another list", async () => {
      const seen: string[] = [];
      let res = await get(t.app, `/api/opt-outs?from=${encodeURIComponent(us)}&pageSize=2`);
      for (;;) {
        seen.push(...res.json.items.map((i: { to: string }) => i.to));
        if (!res.json.meta.next_cursor) break;
        res = await get(t.app, `/api/opt-outs?from=${encodeURIComponent(us)}&pageSize=2&cursor=${encodeURIComponent(res.json.meta.next_cursor)}`);
        expect(res.json.meta.page).toBeNull();
      }
      expect(seen).toEqual([...people].reverse());

      await send(phone(), phone());
      await send(phone(), phone());
      const conversations = await get(t.app, "/api/conversations?pageSize=1");
      const foreign = await get(t.app, `/api/opt-outs?cursor=${encodeURIComponent(conversations.json.meta.next_cursor)}`);
      expect(foreign.status).toBe(400);
      expect(foreign.json.details).toEqual([{ path: "query.cursor", message: "cursor belongs to another list than opt-outs" }]);
    });

    test("a filter that is not a phone number is a 400", async () => {
      const res = await get(t.app, "/api/opt-outs?from=not-a-number");
      expect(res.status).toBe(400);
      expect(res.json.code).toBe("validation_failed");
    });
  });
});

describe("GET /api/opt-outs with API keys", () => {
  let t: TestApp;
  const keys: Record<string, string> = {};
  beforeAll(async () => {
    t = await buildTestApp({ config: { ...UNLIMITED, auth: "on", authFailureLimit: 1_000_000 } });
    for (const scope of ["read", "send"] as const) keys[scope] = (await createApiKey(t.database.sql, { name: scope, scopes: [scope] })).key;
  });
  afterAll(() => t.close());

  test("needs the read scope: 401 without a key, 403 with a send-only key, 200 with a read key", async () => {
    expect((await get(t.app, "/api/opt-outs")).status).toBe(401);
    const forbidden = await get(t.app, "/api/opt-outs", { authorization: `Bearer ${keys.send}` });
    expect(forbidden.status).toBe(403);
    expect(forbidden.json.code).toBe("forbidden");
    const ok = await get(t.app, "/api/opt-outs", { authorization: `Bearer ${keys.read}` });
    expect(ok.status).toBe(200);
    expect(ok.json.items).toEqual([]);
  });
});
