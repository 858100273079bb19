/**
 * The fields issue 9 adds to message items: an email's `subject` (given, or the body's first 78 characters)
 * and an SMS/MMS body's `segments` and `encoding`, stored on every write path (single send, batched send,
 * webhooks, mock inbound), shown alike in a conversation's list and on the message itself, handed to the
 * provider, and counted in `messaging_sms_segments_total`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { claimJobs } from "../../../src/delivery/jobs.ts";
import { SendBatcher } from "../../../src/modules/messages/send-batcher.ts";
import { newMessage } from "../../../src/modules/messages/write.ts";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { email, emailSend, emailWebhook, get, metricValue, phone, post, smsSend, smsWebhook, TS, UNLIMITED } from "../../helpers/messaging.ts";

describe.each(["postgres", "embedded"] as const)("subject, segments and encoding on %s", (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database, config: UNLIMITED });
  });
  afterAll(() => t.close());

  /** The message on its own and as its conversation's list shows it; the two must agree on every list field. */
  async function item(sent: { json: { id: string; conversation_id: string } }) {
    const { attempts: _a, provider: _p, provider_message_id: _pm, status_reason: _r, ...one } = (await get(t.app, `/api/messages/${sent.json.id}`)).json;
    const list = await get(t.app, `/api/conversations/${sent.json.conversation_id}/messages`);
    expect(list.json.items.find((m: { id: string }) => m.id === sent.json.id)).toEqual(one);
    return one;
  }

  test("an email's subject is stored trimmed and shown in the list and the detail, with no segments", async () => {
    const sent = await post(t.app, "/api/messages/email", emailSend({ subject: "  Quarterly report  " }));
    expect(sent.status).toBe(202);
    expect(await item(sent)).toMatchObject({ subject: "Quarterly report", segments: null, encoding: null });
  });

  test("an email without a subject gets the body's first 78 characters on one line", async () => {
    const body = `  Dear team,\n\n  ${"the numbers are in ".repeat(10)}`;
    const flat = `Dear team, ${"the numbers are in ".repeat(10)}`;
    for (const subject of [undefined, null, "   "]) {
      const sent = await post(t.app, "/api/messages/email", emailSend({ body, subject }));
      expect(sent.status).toBe(202);
      const shown = await item(sent);
      expect(shown.subject).toBe(flat.slice(0, 78));
      expect(shown.subject).toHaveLength(78);
    }
  });

  test("a short body's text is its default subject (an HTML body's tags removed), and a subject of exactly 998 characters is accepted", async () => {
    expect((await item(await post(t.app, "/api/messages/email", emailSend({ body: "<p>hi &amp; bye</p>" })))).subject).toBe("hi & bye");
    expect((await item(await post(t.app, "/api/messages/email", emailSend({ body: "plain  hi" })))).subject).toBe("plain hi");
    const long = "é".repeat(998);
    expect((await item(await post(t.app, "/api/messages/email", emailSend({ subject: long })))).subject).toBe(long);
  });

  test.each([
    ["999 characters", "x".repeat(999)],
    ["a line break", "Hello\r\nBcc: victim@example.com"],
    ["a number", 42],
    ["a NUL", "a\0b"],
  ])("a subject with %s is a 400 naming subject, and nothing is stored", async (_case, subject) => {
    const from = email("refused");
    const res = await post(t.app, "/api/messages/email", emailSend({ from, subject }));
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    expect(res.json.details).toContainEqual({ path: "subject", message: expect.any(String) });
    const [row] = await t.database.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM messages WHERE from_addr = $1", [from]);
    expect(row!.n).toBe(0);
  });

  test.each([
    // Plain GSM-7: 160 septets fit one segment.
    ["160 GSM-7 characters", "a".repeat(160), "GSM-7", 1],
    // `€` is in the extension table: 2 septets, so 159 letters and a euro make 161 and need two parts of 153.
    ["a € pushing GSM-7 past 160 septets", `€${"a".repeat(159)}`, "GSM-7", 2],
    ["a short body with €", "Pay €5", "GSM-7", 1],
    // One emoji turns the body into UCS-2: 2 units, so 68 more letters make 70 (one part), 69 make 71 (two of 67).
    ["an emoji and 68 letters", `😀${"a".repeat(68)}`, "UCS-2", 1],
    ["an emoji and 69 letters", `😀${"a".repeat(69)}`, "UCS-2", 2],
  ] as const)("an outbound sms with %s is %s in %d segment(s), no subject", async (_case, body, encoding, segments) => {
    const sent = await post(t.app, "/api/messages/sms", smsSend({ body }));
    expect(sent.status).toBe(202);
    expect(await item(sent)).toMatchObject({ encoding, segments, subject: null });
  });

  test("an mms counts its body's segments too", async () => {
    const sent = await post(t.app, "/api/messages/sms", smsSend({ type: "mms", body: "ça va", attachments: ["https://example.com/a.jpg"] }));
    expect(await item(sent)).toMatchObject({ channel: "mms", encoding: "UCS-2", segments: 1, subject: null });
  });

  test("inbound webhooks store segments for sms and the subject (given or default) for email", async () => {
    const sms = await post(t.app, "/api/webhooks/sms", smsWebhook({ body: "{curly} ".repeat(20) }));
    // 8 characters of which 2 cost 2 septets: 10 × 20 = 200 septets, two parts of 153.
    expect(await item(sms)).toMatchObject({ direction: "inbound", encoding: "GSM-7", segments: 2, subject: null });
    const given = await post(t.app, "/api/webhooks/email", emailWebhook({ subject: "Re: invoice" }));
    expect(await item(given)).toMatchObject({ direction: "inbound", subject: "Re: invoice", segments: null, encoding: null });
    const none = await post(t.app, "/api/webhooks/email", emailWebhook({ body: "Thanks, received." }));
    expect((await item(none)).subject).toBe("Thanks, received.");
    const tooLong = await post(t.app, "/api/webhooks/email", emailWebhook({ subject: "x".repeat(999) }));
    expect(tooLong.status).toBe(400);
    expect(tooLong.json.details).toContainEqual({ path: "subject", message: expect.any(String) });
  });

  test("the mock inbound route takes an email subject and computes sms segments", async () => {
    const mail = await post(t.app, "/api/provider/mock/inbound", { ...emailSend({ subject: "From the mock" }), channel: "email" });
    expect(mail.status).toBe(202);
    expect(await item(mail)).toMatchObject({ subject: "From the mock", segments: null });
    const sms = await post(t.app, "/api/provider/mock/inbound", { ...smsSend({ body: "Hi 😀" }), channel: "sms" });
    expect(await item(sms)).toMatchObject({ subject: null, segments: 1, encoding: "UCS-2" });
  });

  test("a batch of emails and sms keeps each message's own subject and segments", async () => {
    const batcher = new SendBatcher(t.database.sql, { maxInFlight: 1, maxBatch: 256 });
    const row = (i: number) =>
      i % 2 === 0
        ? newMessage({ channel: "email", from: email("batch"), to: email("to"), body: `body ${i}`, subject: `Subject "${i}" {x}`, attachments: [], timestamp: TS }, "outbound", null)
        : newMessage({ channel: "sms", from: phone(), to: phone(), body: `€ ${"b".repeat(i * 10)}`, attachments: [], timestamp: TS }, "outbound", null);
    const rows = Array.from({ length: 20 }, (_, i) => row(i));
    // Occupy the writer so the rest queue up and travel as one batch.
    const first = batcher.submit(row(100));
    const ids = await Promise.all(rows.map((m) => batcher.submit(m)));
    await first;
    for (const [i, m] of rows.entries()) {
      const shown = (await get(t.app, `/api/messages/${ids[i]!.id}`)).json;
      expect({ subject: shown.subject, segments: shown.segments, encoding: shown.encoding }).toEqual({
        subject: m.channel === "email" ? `Subject "${i}" {x}` : null,
        segments: m.segments,
        encoding: m.encoding,
      });
      if (m.channel === "sms") {
        // `€` (2 septets), a space and i × 10 letters: one part up to 160 septets, then parts of 153.
        const septets = 3 + i * 10;
        expect(shown).toMatchObject({ encoding: "GSM-7", segments: septets <= 160 ? 1 : Math.ceil(septets / 153) });
      }
    }
  });

  test("a claimed email job carries its subject to the provider; an sms job has none", async () => {
    await t.database.sql.query("UPDATE messages SET run_at = NULL, locked_by = NULL, locked_until = NULL WHERE run_at IS NOT NULL");
    const mail = await post(t.app, "/api/messages/email", emailSend({ subject: "For the provider" }));
    const sms = await post(t.app, "/api/messages/sms", smsSend());
    const { jobs } = await claimJobs(t.database.sql, { holder: "test", limit: 10, leaseMs: 60_000, takeoverMs: 5000 });
    const byId = new Map(jobs.map((j) => [j.id, j]));
    expect(byId.get(mail.json.id)?.subject).toBe("For the provider");
    expect(byId.get(sms.json.id)?.subject).toBeNull();
  });

  test("messaging_sms_segments_total counts accepted outbound sms segments by encoding, not replays, email or inbound", async () => {
    const read = async () => {
      const text = await t.metrics.registry.metrics();
      return { gsm: metricValue(text, "messaging_sms_segments_total", { encoding: "GSM-7" }), ucs: metricValue(text, "messaging_sms_segments_total", { encoding: "UCS-2" }) };
    };
    const before = await read();
    await post(t.app, "/api/messages/sms", smsSend({ body: "a".repeat(161) }));
    const body = smsSend({ body: `😀${"a".repeat(69)}` });
    const key = { "idempotency-key": crypto.randomUUID() };
    expect((await post(t.app, "/api/messages/sms", body, key)).status).toBe(202);
    const replay = await post(t.app, "/api/messages/sms", body, key);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    await post(t.app, "/api/messages/email", emailSend());
    await post(t.app, "/api/webhooks/sms", smsWebhook({ body: "a".repeat(400) }));
    const after = await read();
    expect({ gsm: after.gsm - before.gsm, ucs: after.ucs - before.ucs }).toEqual({ gsm: 2, ucs: 2 });
  });
});
