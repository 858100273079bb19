import { type Case, check, checkEqual, checkError, checkUtcTimestamp } from "../case.ts";
import { accept, emailPayload, findConversation, getMessage, inboundSmsPayload, type Json, messagesOf, page, smsPayload } from "./fixtures.ts";

const graphemes = (text: string) => [...new Intl.Segmenter("en", { granularity: "grapheme" }).segment(text)].map((s) => s.segment);

/** One page is sorted by last_activity_at descending, then id descending. */
function checkListOrder(items: Json[]): void {
  for (let i = 1; i < items.length; i++) {
    const [p, q] = [items[i - 1]!, items[i]!];
    const [tp, tq] = [Date.parse(String(p.last_activity_at)), Date.parse(String(q.last_activity_at))];
    check(tp > tq || (tp === tq && BigInt(String(p.id)) > BigInt(String(q.id))), `conversation ${String(p.id)} is listed before ${String(q.id)} out of order`);
  }
}

/** SPEC §6: lists, their pages and order, address normalization and snippets. */
export const readCases: Case[] = [
  {
    id: "reads.conversation-item",
    title: "a conversation reads back with id, key, channel, participants, message_count and last_activity_at",
    tags: ["reads", "conversations"],
    spec: "§6 Conversation item: id (string), key, channel (transport), participant_a, participant_b, message_count, last_activity_at",
    async run(ctx) {
      const from = ctx.data.phone();
      const to = ctx.data.phone();
      const later = ctx.data.timestamp(2000);
      const a = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from, to, timestamp: later }), "a send");
      await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from, to, timestamp: ctx.data.timestamp(-60_000) }), "an earlier-dated send");
      const c = await findConversation(ctx, a.conversationId);
      const [lo, hi] = [from, to].sort();
      checkEqual(c.key, `sms:${lo}<->${hi}`, "key");
      checkEqual(c.channel, "sms", "channel");
      checkEqual([c.participant_a, c.participant_b], [lo, hi], "participants");
      checkEqual(c.message_count, 2, "message_count");
      checkUtcTimestamp(c.last_activity_at, "last_activity_at");
      checkEqual(Date.parse(String(c.last_activity_at)), Date.parse(later), "last_activity_at (the latest message's timestamp, not the last written)");
    },
  },
  {
    id: "reads.conversation-order",
    title: "conversations are listed by last activity, newest first, and a new message moves one up",
    tags: ["reads", "conversations", "ordering"],
    spec: "§6 conversations ordered by last_activity_at descending, then id descending",
    async run(ctx) {
      const firstPayload = emailPayload(ctx, { timestamp: ctx.data.timestamp(1000) });
      const first = await accept(ctx, "/api/messages/email", firstPayload, "the first conversation");
      const second = await accept(ctx, "/api/messages/email", emailPayload(ctx, { timestamp: ctx.data.timestamp(2000) }), "the second conversation");
      // Where the two stand in the list; a live target may list others with later activity first, so a few pages are read.
      const positions = async () => {
        const ids: unknown[] = [];
        for (let p = 1; p <= 4 && !(ids.includes(first.conversationId) && ids.includes(second.conversationId)); p++) {
          const { items } = await page(ctx, `/api/conversations?page=${p}&pageSize=50`);
          checkListOrder(items);
          ids.push(...items.map((c) => c.id));
          if (items.length < 50) break;
        }
        const found = [ids.indexOf(first.conversationId), ids.indexOf(second.conversationId)] as const;
        check(found[0] >= 0 && found[1] >= 0, "the run's conversations are not among the first 200 listed");
        return found;
      };
      const [a, b] = await positions();
      check(b < a, "the conversation with the later activity is not listed first");
      const { from, to } = firstPayload;
      await accept(ctx, "/api/messages/email", emailPayload(ctx, { from, to, timestamp: ctx.data.timestamp(3000) }), "a newer message in the first");
      const [a2, b2] = await positions();
      check(a2 < b2, "a newer message did not move its conversation ahead");
    },
  },
  {
    id: "reads.message-order",
    title: "messages are listed by timestamp, oldest first, then by id",
    tags: ["reads", "ordering"],
    spec: "§6 messages ordered by timestamp ascending, then id ascending",
    async run(ctx) {
      const from = ctx.data.phone();
      const to = ctx.data.phone();
      const t = (s: number) => new Date(Date.UTC(2024, 0, 1, 12, 0, s)).toISOString();
      const ids: Record<string, string> = {};
      for (const [name, at] of [["third", t(30)], ["first", t(10)], ["second-a", t(20)], ["second-b", t(20)]] as const) {
        ids[name] = (await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from, to, body: ctx.data.body(name), timestamp: at }), name)).id;
      }
      const listed = (await messagesOf(ctx, (await getMessage(ctx, ids.first!)).conversation_id as string)).map((m) => m.id);
      checkEqual(listed, [ids.first, ids["second-a"], ids["second-b"], ids.third], "message ids in list order");
    },
  },
  {
    id: "reads.pagination",
    title: "page and pageSize select pages, meta counts every row, and page_size is an alias",
    tags: ["reads", "pagination"],
    spec: "§6 Response 200 {items, meta: {page, page_size, total}}; total counts all rows; page_size alias",
    async run(ctx) {
      const from = ctx.data.phone();
      const to = ctx.data.phone();
      let conversationId = "";
      for (let i = 0; i < 3; i++) {
        conversationId = (await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from, to, body: ctx.data.body(`page ${i}`), timestamp: ctx.data.timestamp(i) }), `message ${i}`)).conversationId;
      }
      const base = `/api/conversations/${conversationId}/messages`;
      const expectPage = async (query: string, count: number, meta: Json) => {
        const p = await page(ctx, `${base}?${query}`);
        checkEqual(p.items.length, count, `items of ?${query}`);
        for (const [k, v] of Object.entries(meta)) checkEqual(p.meta[k], v, `meta.${k} of ?${query}`);
        return p;
      };
      const p1 = await expectPage("page=1&pageSize=2", 2, { page: 1, page_size: 2, total: 3 });
      const p2 = await expectPage("page=2&pageSize=2", 1, { page: 2, page_size: 2, total: 3 });
      check(!p1.items.some((m) => m.id === p2.items[0]!.id), "page 2 repeats a message of page 1");
      await expectPage("page=3&pageSize=2", 0, { total: 3 });
      await expectPage("page_size=1", 1, { page: 1, page_size: 1, total: 3 });
      await expectPage("", 3, { page: 1, page_size: 50, total: 3 });
    },
  },
  {
    id: "reads.pagination-bounds",
    title: "out-of-range page and pageSize are clamped; a non-integer is a 400",
    tags: ["reads", "pagination", "validation"],
    spec: "§6 page default 1 (values below 1 become 1); pageSize default 50, 0 → 50, above 50 → 50; a non-integer → 400",
    async run(ctx) {
      for (const [query, meta] of [
        ["page=0", { page: 1, page_size: 50 }],
        ["page=-3", { page: 1, page_size: 50 }],
        ["pageSize=0", { page: 1, page_size: 50 }],
        ["pageSize=500", { page: 1, page_size: 50 }],
        ["page_size=7", { page: 1, page_size: 7 }],
      ] as const) {
        const p = await page(ctx, `/api/conversations?${query}`);
        for (const [k, v] of Object.entries(meta)) checkEqual(p.meta[k], v, `meta.${k} of ?${query}`);
        check(typeof p.meta.total === "number" && p.items.length <= Number(p.meta.page_size), `?${query}: more items than page_size, or no total`);
      }
      for (const query of ["page=abc", "pageSize=1.5", "page=2x"]) {
        checkError(await ctx.http.get(`/api/conversations?${query}`), 400, ["validation_failed", "bad_request"], `?${query}`);
      }
    },
  },
  {
    id: "reads.not-found",
    title: "an unknown conversation or message is 404 not_found",
    tags: ["reads", "errors"],
    spec: "§6 unknown conversation id → 404; §2 not_found",
    async run({ http }) {
      checkError(await http.get("/api/conversations/987654321098765/messages"), 404, "not_found", "messages of an unknown conversation");
      checkError(await http.get("/api/messages/987654321098765"), 404, "not_found", "an unknown message");
    },
  },
  {
    id: "reads.phone-normalization",
    title: "phone numbers written differently are one conversation, keyed by digits with the leading +",
    tags: ["reads", "normalization", "conversations"],
    spec: "§6 phone: keep digits, keep a leading + if the address starts with one; from/to as the sender wrote them",
    async run(ctx) {
      const a = ctx.data.phone();
      const b = ctx.data.phone();
      const spaced = (p: string) => `+${p.slice(1, 2)} (${p.slice(2, 5)}) ${p.slice(5, 9)}-${p.slice(9)}`;
      const dotted = (p: string) => `${p.slice(0, 5)}.${p.slice(5, 9)}.${p.slice(9)}`;
      const one = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from: spaced(a), to: dotted(b) }), "formatted numbers");
      const two = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from: a, to: b }), "plain numbers");
      checkEqual(two.conversationId, one.conversationId, "conversation of the same pair written plainly");
      if (ctx.target.features.get("webhooks") === true) {
        const reply = await accept(ctx, "/api/webhooks/sms", inboundSmsPayload(ctx, { from: dotted(b), to: spaced(a) }), "a reply with formatted numbers");
        checkEqual(reply.conversationId, one.conversationId, "conversation of the reply");
      }
      const c = await findConversation(ctx, one.conversationId);
      const [lo, hi] = [a, b].sort();
      checkEqual([c.participant_a, c.participant_b], [lo, hi], "normalized participants");
      const m = await getMessage(ctx, one.id);
      checkEqual([m.from, m.to], [spaced(a), dotted(b)], "from and to as written");
      const bare = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from: a.slice(1), to: b }), "the sender without its +");
      check(bare.conversationId !== one.conversationId, "a number without + joined the conversation of the one with +");
    },
  },
  {
    id: "reads.email-normalization",
    title: "email addresses are lowercased and lose their +tag, so variants are one conversation",
    tags: ["reads", "normalization", "conversations"],
    spec: "§6 email lowercased, and a +tag in the local part removed (User+Promo@Example.com → user@example.com)",
    async run(ctx) {
      const local = `norm${ctx.data.runId}`;
      const domain = `Run-${ctx.data.runId}.Example.Test`;
      const other = ctx.data.email("peer");
      const one = await accept(ctx, "/api/messages/email", emailPayload(ctx, { from: `${local.toUpperCase()}+Promo@${domain}`, to: other }), "a tagged, capitalised address");
      const two = await accept(ctx, "/api/messages/email", emailPayload(ctx, { from: `${local}@${domain.toLowerCase()}`, to: other.toUpperCase() }), "the plain address");
      checkEqual(two.conversationId, one.conversationId, "conversation of the plain address");
      const c = await findConversation(ctx, one.conversationId);
      const [lo, hi] = [`${local}@${domain.toLowerCase()}`, other.toLowerCase()].sort();
      checkEqual(c.key, `email:${lo}<->${hi}`, "key");
      checkEqual(c.channel, "email", "channel");
    },
  },
  {
    id: "reads.snippet-whitespace",
    title: "a snippet is the body trimmed with every run of whitespace collapsed to one space",
    tags: ["reads", "snippets"],
    spec: "§6 Snippet: the body trimmed, every run of whitespace collapsed to one space",
    async run(ctx) {
      const body = `  \n ${ctx.data.body("one")} \t\t two\n\n  three   `;
      const a = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { body }), "a body with runs of whitespace");
      const m = await getMessage(ctx, a.id);
      checkEqual(m.snippet, `${ctx.data.body("one")} two three`, "snippet");
      checkEqual(m.body, body, "body (stored as sent)");
    },
  },
  {
    id: "reads.snippet-graphemes",
    title: "a snippet is cut at user-perceived characters: a family or skin-toned emoji is never split",
    tags: ["reads", "snippets"],
    spec: "§6 cut to the first 64 user-perceived characters (grapheme clusters — an emoji with a skin tone or a family emoji is one); length configurable",
    async run(ctx) {
      const from = ctx.data.phone();
      const to = ctx.data.phone();
      const send = (body: string, what: string) => accept(ctx, "/api/messages/sms", smsPayload(ctx, { from, to, body }), what);
      // The cut is configurable, so it is learnt from a plain body first.
      const plain = await send("a".repeat(1600), "a long plain body");
      const length = [...String((await getMessage(ctx, plain.id)).snippet)].length;
      check(length >= 1 && length <= 1600, `a snippet of ${length} characters`);
      if (length !== 64) ctx.note(`the target cuts snippets at ${length} characters (64 by default)`);
      const units = [["family emoji", "👨‍👩‍👧‍👦"], ["thumbs up with a skin tone", "👍🏽"], ["flag", "🇳🇱"], ["e with a combining accent", "e\u0301"]] as const;
      const repeat = Math.min(length + 10, 200);
      const ids: string[] = [];
      for (const [what, unit] of units) ids.push((await send(unit.repeat(repeat), `a body of ${what}`)).id);
      const listed = await messagesOf(ctx, plain.conversationId);
      for (const [i, [what, unit]] of units.entries()) {
        const snippet = String(listed.find((m) => m.id === ids[i])?.snippet);
        const clusters = graphemes(snippet);
        check(clusters.every((c) => c === unit), `the snippet of ${what} splits a cluster: ${JSON.stringify(snippet.slice(-12))}`);
        checkEqual(clusters.length, Math.min(length, repeat), `grapheme clusters in the snippet of ${what}`);
      }
    },
  },
];
