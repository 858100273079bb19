import { type Case, type CaseContext, check, checkEqual, checkFieldRefused, checkStatus, checkUtcTimestamp } from "../case.ts";
import { accept, emailPayload, getMessage, type Json, smsPayload } from "./fixtures.ts";

const OUTBOUND_STATUSES = ["queued", "sending", "sent", "delivered", "failed", "undelivered"];

/** The fields SPEC §6 lists for one outbound message, as read back after a send. */
async function checkStoredOutbound(ctx: CaseContext, id: string, conversationId: string, sent: Json, channel: string): Promise<Json> {
  const m = await getMessage(ctx, id);
  const what = `message ${id}`;
  checkEqual(m.id, id, `${what} id`);
  checkEqual(m.conversation_id, conversationId, `${what} conversation_id`);
  checkEqual(m.direction, "outbound", `${what} direction`);
  checkEqual(m.channel, channel, `${what} channel`);
  checkEqual(m.type, channel, `${what} type (same as channel)`);
  checkEqual(m.from, sent.from, `${what} from (as written)`);
  checkEqual(m.to, sent.to, `${what} to (as written)`);
  checkEqual(m.body, sent.body, `${what} body`);
  checkEqual(m.attachments, sent.attachments ?? [], `${what} attachments`);
  check(OUTBOUND_STATUSES.includes(String(m.status)), `${what} has status ${String(m.status)}`);
  checkUtcTimestamp(m.timestamp, `${what} timestamp`);
  check(new Date(String(m.timestamp)).getTime() === new Date(String(sent.timestamp)).getTime(), `${what} timestamp ${String(m.timestamp)} is not the one sent, ${String(sent.timestamp)}`);
  check(Array.isArray(m.attempts), `${what} has no attempts list`);
  return m;
}

/** Bodies that break one rule of SPEC §3 each, with the field the 400 must name. */
const SMS_REFUSALS: [string, string, (ctx: CaseContext) => Json][] = [
  ["a blank from", "from", (ctx) => smsPayload(ctx, { from: "   " })],
  ["a missing to", "to", (ctx) => smsPayload(ctx, { to: undefined })],
  ["a blank body", "body", (ctx) => smsPayload(ctx, { body: " \n\t " })],
  ["a from of 2 digits", "from", (ctx) => smsPayload(ctx, { from: "12" })],
  ["a to of 16 digits", "to", (ctx) => smsPayload(ctx, { to: "+1555123456789012" })],
  ["a to with letters", "to", (ctx) => smsPayload(ctx, { to: "+1555CALLNOW" })],
  ["type fax", "type", (ctx) => smsPayload(ctx, { type: "fax" })],
  ["an sms body of 1601 characters", "body", (ctx) => smsPayload(ctx, { body: "a".repeat(1601) })],
  ["a timestamp that is no date", "timestamp", (ctx) => smsPayload(ctx, { timestamp: "yesterday" })],
  ["a timestamp past year 9999 in UTC", "timestamp", (ctx) => smsPayload(ctx, { timestamp: "9999-12-31T23:30:00-01:00" })],
  ["a missing timestamp", "timestamp", (ctx) => smsPayload(ctx, { timestamp: undefined })],
];

const MMS_REFUSALS: [string, string, (ctx: CaseContext) => Json][] = [
  ["an mms with null attachments", "attachments", (ctx) => smsPayload(ctx, { type: "mms", attachments: null })],
  ["an mms with no attachments", "attachments", (ctx) => smsPayload(ctx, { type: "mms", attachments: [] })],
  ["an mms without the field", "attachments", (ctx) => smsPayload(ctx, { type: "mms", attachments: undefined })],
  ["9 attachments", "attachments", (ctx) => smsPayload(ctx, { type: "mms", attachments: Array.from({ length: 9 }, (_, i) => `https://cdn.example.test/${i}.png`) })],
  ["an ftp attachment", "attachments", (ctx) => smsPayload(ctx, { type: "mms", attachments: ["ftp://cdn.example.test/a.png"] })],
  ["a relative attachment", "attachments", (ctx) => smsPayload(ctx, { type: "mms", attachments: ["/a.png"] })],
  ["an attachment URL of 2049 characters", "attachments", (ctx) => smsPayload(ctx, { type: "mms", attachments: [`https://cdn.example.test/${"a".repeat(2049 - 25)}`] })],
];

const EMAIL_REFUSALS: [string, string, (ctx: CaseContext) => Json][] = [
  ["an address without @", "to", (ctx) => emailPayload(ctx, { to: "nobody.example.test" })],
  ["an address with two @", "from", (ctx) => emailPayload(ctx, { from: "a@b@example.test" })],
  ["an empty local part", "to", (ctx) => emailPayload(ctx, { to: "@example.test" })],
  ["a local part of 65 characters", "to", (ctx) => emailPayload(ctx, { to: `${"a".repeat(65)}@example.test` })],
  ["an address of 255 characters", "to", (ctx) => emailPayload(ctx, { to: `a@${"b".repeat(240)}.example.test` })],
  ["a blank body", "body", (ctx) => emailPayload(ctx, { body: "  " })],
];

function refusalCase(id: string, title: string, path: string, refusals: typeof SMS_REFUSALS, spec: string): Case {
  return {
    id,
    title,
    tags: ["sends", "validation"],
    spec,
    async run(ctx) {
      for (const [what, field, build] of refusals) checkFieldRefused(await ctx.http.post(path, build(ctx)), field, what);
    },
  };
}

/** SPEC §3: sends are accepted, stored as written, and refused with a 400 naming the field when they break a rule. */
export const sendCases: Case[] = [
  {
    id: "sends.sms",
    title: "an SMS is accepted with 202 {status, id, conversation_id} and reads back as sent",
    tags: ["sends", "sms"],
    spec: "§3 success: 202 {\"status\": \"accepted\", \"id\", \"conversation_id\"}; §6 message item fields",
    async run(ctx) {
      const sent = smsPayload(ctx, { body: ctx.data.body("plain GSM text") });
      const { id, conversationId } = await accept(ctx, "/api/messages/sms", sent, "POST /api/messages/sms");
      const m = await checkStoredOutbound(ctx, id, conversationId, sent, "sms");
      checkEqual(m.encoding, "GSM-7", "encoding of a GSM-7 body");
      checkEqual(m.segments, 1, "segments of a short body");
    },
  },
  {
    id: "sends.mms",
    title: "an MMS with attachments is accepted, and joins the SMS conversation of the same pair",
    tags: ["sends", "mms"],
    spec: "§1 SMS and MMS between two phones are one conversation; §3 mms needs at least one attachment",
    async run(ctx) {
      const from = ctx.data.phone();
      const to = ctx.data.phone();
      const sms = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from, to }), "the SMS");
      const sent = smsPayload(ctx, { from, to, type: "MMS", attachments: ["https://cdn.example.test/cat.png", "http://cdn.example.test/dog.jpg"] });
      const mms = await accept(ctx, "/api/messages/sms", sent, "the MMS (type in capitals)");
      checkEqual(mms.conversationId, sms.conversationId, "conversation of the MMS (the SMS's)");
      await checkStoredOutbound(ctx, mms.id, mms.conversationId, sent, "mms");
    },
  },
  {
    id: "sends.email",
    title: "an email keeps its HTML body verbatim and its subject; without one the subject is the body's start",
    tags: ["sends", "email"],
    spec: "§3 email body may contain HTML and is stored verbatim; optional subject (default: the body's snippet cut to 78 characters)",
    async run(ctx) {
      const html = ctx.data.body(`<h1>Hi &amp; welcome</h1>\n<p style="color:red">${"words ".repeat(30)}</p>`);
      const sent = emailPayload(ctx, { body: html, subject: "Selftest subject" });
      const a = await accept(ctx, "/api/messages/email", sent, "POST /api/messages/email");
      const m = await checkStoredOutbound(ctx, a.id, a.conversationId, sent, "email");
      checkEqual(m.subject, "Selftest subject", "subject given");
      checkEqual(m.segments ?? null, null, "segments of an email");
      const bare = emailPayload(ctx, { body: html });
      const b = await accept(ctx, "/api/messages/email", bare, "an email without a subject");
      const subject = String((await getMessage(ctx, b.id)).subject);
      check(subject.length > 0 && [...subject].length <= 78, `the default subject is ${JSON.stringify(subject)}, not 1–78 characters`);
      check(html.replace(/\s+/g, " ").startsWith(subject.replace(/…$/, "")), `the default subject ${JSON.stringify(subject)} is not the start of the body`);
    },
  },
  {
    id: "sends.bounds",
    title: "the limits themselves are allowed: a 1600-character SMS, 15 digits, a short code, 8 attachments, a timestamp offset",
    tags: ["sends", "validation"],
    spec: "§3 3–15 digits (short codes included); at most 8 attachments; sms body at most 1600 characters; RFC 3339 with offset",
    async run(ctx) {
      const long = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { body: ctx.data.body("x".repeat(1600 - ctx.data.body("").length)) }), "a 1600-character body");
      const m = await getMessage(ctx, long.id);
      check(Number(m.segments) >= 10, `a 1600-character GSM-7 body counted ${String(m.segments)} segments`);
      await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from: "55501" }), "a short-code sender");
      await accept(ctx, "/api/messages/sms", smsPayload(ctx, { to: "+1 (555) 010-0199" }), "a formatted number");
      const eight = Array.from({ length: 8 }, (_, i) => `https://cdn.example.test/${ctx.data.runId}/${i}.png`);
      await accept(ctx, "/api/messages/sms", smsPayload(ctx, { type: "mms", attachments: eight }), "8 attachments");
      const offset = smsPayload(ctx, { timestamp: "2024-03-10T09:30:00+02:00" });
      const o = await accept(ctx, "/api/messages/sms", offset, "a timestamp with an offset");
      const stored = (await getMessage(ctx, o.id)).timestamp;
      checkUtcTimestamp(stored, "a timestamp sent with an offset");
      checkEqual(Date.parse(String(stored)), Date.parse("2024-03-10T07:30:00Z"), "the instant of a timestamp sent with +02:00");
    },
  },
  {
    id: "sends.unicode",
    title: "a body outside GSM-7 is stored intact and counted as UCS-2",
    tags: ["sends", "sms"],
    spec: "§6 segments and encoding (sms/mms: GSM-7 or UCS-2); §2 UTF-8",
    async run(ctx) {
      const sent = smsPayload(ctx, { body: ctx.data.body("Grüße, 你好 👋🏽") });
      const a = await accept(ctx, "/api/messages/sms", sent, "a UCS-2 body");
      const m = await getMessage(ctx, a.id);
      checkEqual(m.body, sent.body, "the body read back");
      checkEqual(m.encoding, "UCS-2", "encoding of a body with emoji");
    },
  },
  refusalCase("sends.sms-refusals", "each SMS rule broken is a 400 naming the field", "/api/messages/sms", SMS_REFUSALS, "§3 rules, each a 400 with a message that names the field"),
  refusalCase("sends.mms-refusals", "MMS without attachments, too many or bad attachment URLs are 400s", "/api/messages/sms", MMS_REFUSALS, "§3 mms needs at least one attachment (null, absent and [] all fail); at most 8; absolute http(s) URLs of at most 2048 characters"),
  refusalCase("sends.email-refusals", "each email address or body rule broken is a 400 naming the field", "/api/messages/email", EMAIL_REFUSALS, "§3 one @ with non-empty local part and a domain; at most 254 characters with a local part of at most 64"),
  {
    id: "sends.refusal-stores-nothing",
    title: "a refused send stores nothing",
    tags: ["sends", "validation"],
    spec: "§3 rules are 400s; §2 202 means committed (and nothing else does)",
    async run(ctx) {
      const from = ctx.data.phone();
      const to = ctx.data.phone();
      checkStatus(await ctx.http.post("/api/messages/sms", smsPayload(ctx, { from, to, type: "mms", attachments: [] })), 400, "an mms without attachments");
      const ok = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from, to }), "a valid send between the same pair");
      const { items } = (await ctx.http.get(`/api/conversations/${ok.conversationId}/messages`)).body as { items: Json[] };
      checkEqual(items.length, 1, "messages in the pair's conversation (the refused one must not be there)");
    },
  },
];
