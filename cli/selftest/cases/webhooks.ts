import { type Case, check, checkEqual, checkFieldRefused } from "../case.ts";
import { accept, findConversation, getMessage, inboundEmailPayload, inboundSmsPayload, messagesOf, smsPayload } from "./fixtures.ts";

/** Concurrent first messages of a new pair (SPEC §6 says 100; fewer keep the run inside the target's rate limit). */
const CONCURRENT_FIRST_MESSAGES = 12;

/** SPEC §4: inbound messages, deduplicated by the provider's id. */
export const webhookCases: Case[] = [
  {
    id: "webhooks.sms",
    title: "an inbound SMS is stored as inbound with status received",
    tags: ["webhooks", "sms"],
    spec: "§4 stored as inbound, status received, in its conversation; 202 with §3's body shape",
    needs: ["webhooks"],
    async run(ctx) {
      const sent = inboundSmsPayload(ctx);
      const a = await accept(ctx, "/api/webhooks/sms", sent, "POST /api/webhooks/sms");
      const m = await getMessage(ctx, a.id);
      checkEqual(m.direction, "inbound", "direction");
      checkEqual(m.status, "received", "status");
      checkEqual(m.channel, "sms", "channel");
      checkEqual(m.from, sent.from, "from");
      checkEqual(m.body, sent.body, "body");
      checkEqual(m.conversation_id, a.conversationId, "conversation_id");
    },
  },
  {
    id: "webhooks.email",
    title: "an inbound email (xillio_id) is stored as inbound with status received",
    tags: ["webhooks", "email"],
    spec: "§4 body (email): from, to, xillio_id, body, attachments, timestamp",
    needs: ["webhooks"],
    async run(ctx) {
      const sent = inboundEmailPayload(ctx, { attachments: [`https://files.example.test/${ctx.data.runId}.pdf`] });
      const a = await accept(ctx, "/api/webhooks/email", sent, "POST /api/webhooks/email");
      const m = await getMessage(ctx, a.id);
      checkEqual(m.direction, "inbound", "direction");
      checkEqual(m.status, "received", "status");
      checkEqual(m.channel, "email", "channel");
      checkEqual(m.body, sent.body, "body");
      checkEqual(m.attachments, sent.attachments, "attachments");
    },
  },
  {
    id: "webhooks.dedup",
    title: "a repeated provider id stores nothing new and answers the first message's id",
    tags: ["webhooks", "dedup"],
    spec: "§4 Deduplication: a repeat of (channel transport, provider id) stores nothing new and answers 202 with the id of the message stored the first time",
    needs: ["webhooks"],
    async run(ctx) {
      const first = inboundSmsPayload(ctx);
      const a = await accept(ctx, "/api/webhooks/sms", first, "the first delivery");
      const b = await accept(ctx, "/api/webhooks/sms", first, "the same delivery again");
      checkEqual(b.id, a.id, "id answered to the repeat");
      const changed = { ...first, body: ctx.data.body("a retry with another body") };
      const c = await accept(ctx, "/api/webhooks/sms", changed, "a repeat of the provider id with another body");
      checkEqual(c.id, a.id, "id answered to a repeat with another body");
      const messages = await messagesOf(ctx, a.conversationId);
      checkEqual(messages.length, 1, "messages stored for three deliveries of one provider id");
      checkEqual(messages[0]!.body, first.body, "the stored body (the first delivery's)");
      const e = inboundEmailPayload(ctx);
      const e1 = await accept(ctx, "/api/webhooks/email", e, "the first email delivery");
      const e2 = await accept(ctx, "/api/webhooks/email", e, "the same email again");
      checkEqual(e2.id, e1.id, "id answered to a repeated xillio_id");
    },
  },
  {
    id: "webhooks.dedup-per-transport",
    title: "the same provider id on the SMS and the email webhook is two messages",
    tags: ["webhooks", "dedup"],
    spec: "§4 deduplication key is (channel transport, provider id)",
    needs: ["webhooks"],
    async run(ctx) {
      const shared = ctx.data.providerId();
      const sms = await accept(ctx, "/api/webhooks/sms", inboundSmsPayload(ctx, { messaging_provider_id: shared }), "an SMS with the id");
      const email = await accept(ctx, "/api/webhooks/email", inboundEmailPayload(ctx, { xillio_id: shared }), "an email with the same id");
      check(sms.id !== email.id, `both deliveries were answered with message ${sms.id}`);
    },
  },
  {
    id: "webhooks.refusals",
    title: "a webhook without its provider id, or breaking §3's rules, is a 400 naming the field",
    tags: ["webhooks", "validation"],
    spec: "§4 same field rules as §3; the provider's id is required",
    needs: ["webhooks"],
    async run(ctx) {
      checkFieldRefused(await ctx.http.post("/api/webhooks/sms", inboundSmsPayload(ctx, { messaging_provider_id: undefined })), "messaging_provider_id", "no messaging_provider_id");
      checkFieldRefused(await ctx.http.post("/api/webhooks/email", inboundEmailPayload(ctx, { xillio_id: undefined })), "xillio_id", "no xillio_id");
      checkFieldRefused(await ctx.http.post("/api/webhooks/sms", inboundSmsPayload(ctx, { from: "1" })), "from", "a one-digit from");
      checkFieldRefused(await ctx.http.post("/api/webhooks/sms", inboundSmsPayload(ctx, { type: "mms", attachments: null })), "attachments", "an mms without attachments");
      checkFieldRefused(await ctx.http.post("/api/webhooks/email", inboundEmailPayload(ctx, { to: "no-at-sign" })), "to", "an email address without @");
    },
  },
  {
    id: "webhooks.one-conversation-both-ways",
    title: "a reply (inbound from the other side) joins the outbound message's conversation",
    tags: ["webhooks", "conversations"],
    spec: "§1 conversation: all messages between the same two normalized addresses on the same transport; §6 key does not depend on who wrote first",
    needs: ["webhooks"],
    async run(ctx) {
      const us = ctx.data.phone();
      const them = ctx.data.phone();
      const out = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from: us, to: them }), "our message");
      const reply = await accept(ctx, "/api/webhooks/sms", inboundSmsPayload(ctx, { from: them, to: us, timestamp: ctx.data.timestamp(1000) }), "their reply");
      checkEqual(reply.conversationId, out.conversationId, "conversation of the reply");
      const messages = await messagesOf(ctx, out.conversationId);
      checkEqual(messages.map((m) => m.direction), ["outbound", "inbound"], "directions in order");
    },
  },
  {
    id: "webhooks.concurrent-first-messages",
    title: `${CONCURRENT_FIRST_MESSAGES} concurrent first messages of a new pair make one conversation counting them all`,
    tags: ["webhooks", "conversations", "concurrency"],
    spec: "§6 message_count and last_activity_at are updated in the same transaction; concurrent first messages between a new pair make exactly one conversation",
    needs: ["webhooks"],
    async run(ctx) {
      const from = ctx.data.phone();
      const to = ctx.data.phone();
      const answers = await Promise.all(
        Array.from({ length: CONCURRENT_FIRST_MESSAGES }, (_, i) =>
          accept(ctx, "/api/webhooks/sms", inboundSmsPayload(ctx, { from, to, body: ctx.data.body(`burst ${i}`) }), `concurrent message ${i}`),
        ),
      );
      const conversations = new Set(answers.map((a) => a.conversationId));
      checkEqual(conversations.size, 1, "conversations made");
      const [conversationId] = conversations;
      const list = await ctx.http.get(`/api/conversations/${conversationId}/messages?pageSize=1`);
      checkEqual((list.body.meta as { total?: number } | undefined)?.total, CONCURRENT_FIRST_MESSAGES, "total of the conversation's messages");
      const item = await findConversation(ctx, conversationId!);
      checkEqual(item.message_count, CONCURRENT_FIRST_MESSAGES, "message_count of the conversation");
    },
  },
];
