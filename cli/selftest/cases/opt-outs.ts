import { type Case, check, checkEqual, checkError } from "../case.ts";
import { accept, inboundSmsPayload, messagesOf, smsPayload } from "./fixtures.ts";

/** SPEC §4 opt-out: a recipient who texted STOP gets nothing more from that number until START. */
export const optOutCases: Case[] = [
  {
    id: "optouts.stop-and-start",
    title: "after an inbound STOP a send to that recipient from that number is 422 recipient_opted_out; START lifts it",
    tags: ["optouts", "webhooks", "sends", "errors"],
    spec: "§4 an inbound SMS whose whole body is STOP (any case) opts its sender out of messages from that number; START opts back in; §3 → 422 recipient_opted_out, nothing queued",
    needs: ["webhooks"],
    async run(ctx) {
      const list = await ctx.http.get("/api/opt-outs");
      if (list.status === 404) ctx.skip("the target keeps no opt-outs (GET /api/opt-outs is 404)");
      const us = ctx.data.phone();
      const them = ctx.data.phone();
      const first = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from: us, to: them }), "a send before the opt-out");
      await accept(ctx, "/api/webhooks/sms", inboundSmsPayload(ctx, { from: them, to: us, body: " Stop " }), "their STOP");
      const refused = await ctx.http.post("/api/messages/sms", smsPayload(ctx, { from: us, to: them }));
      checkError(refused, 422, "recipient_opted_out", "a send after their STOP");
      checkEqual((await messagesOf(ctx, first.conversationId)).length, 2, "messages in the conversation (the refused send must not be there)");
      const listed = await ctx.http.get("/api/opt-outs");
      check(listed.status === 200 && listed.text.includes(them), `GET /api/opt-outs does not list ${them}: HTTP ${listed.status}`);
      await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from: ctx.data.phone(), to: them }), "a send to them from another number");
      await accept(ctx, "/api/webhooks/sms", inboundSmsPayload(ctx, { from: them, to: us, body: "START" }), "their START");
      await accept(ctx, "/api/messages/sms", smsPayload(ctx, { from: us, to: them }), "a send after their START");
    },
  },
];
