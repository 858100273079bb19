import { type Case, check, checkAccepted, checkEqual, checkError, checkStatus, show } from "../case.ts";
import { inboundSmsPayload, messagesOf, smsPayload, emailPayload } from "./fixtures.ts";

/** Requests sent at once with one key: enough to overlap on a target that runs them in parallel. */
const CONCURRENT_TWINS = 6;

/** SPEC §5: Idempotency-Key on the four POST routes. */
export const idempotencyCases: Case[] = [
  {
    id: "idempotency.replay",
    title: "the same key and body replays the stored answer with Idempotent-Replayed: true and stores nothing again",
    tags: ["idempotency", "sends"],
    spec: "§5 same key, same body: the stored response is replayed (same status, same body) with Idempotent-Replayed: true; nothing is stored or sent again",
    async run(ctx) {
      const key = ctx.data.idempotencyKey();
      const payload = smsPayload(ctx);
      const first = await ctx.http.post("/api/messages/sms", payload, { headers: { "idempotency-key": key } });
      const ids = checkAccepted(first, "the first request");
      check(first.headers.get("idempotent-replayed") !== "true", "the first request is marked as a replay");
      const again = await ctx.http.post("/api/messages/sms", payload, { headers: { "idempotency-key": key } });
      checkStatus(again, 202, "the replay");
      checkEqual(again.body, first.body, "the replayed body");
      checkEqual(again.headers.get("idempotent-replayed"), "true", "Idempotent-Replayed of the replay");
      checkEqual((await messagesOf(ctx, ids.conversationId)).length, 1, "messages stored for two requests with one key");
    },
  },
  {
    id: "idempotency.conflict",
    title: "the same key with another body is 422 idempotency_key_reused",
    tags: ["idempotency", "sends", "errors"],
    spec: "§5 same key, different body: 422 idempotency_key_reused",
    async run(ctx) {
      const key = ctx.data.idempotencyKey();
      const payload = smsPayload(ctx);
      checkAccepted(await ctx.http.post("/api/messages/sms", payload, { headers: { "idempotency-key": key } }), "the first request");
      const other = { ...payload, body: ctx.data.body("another body") };
      checkError(await ctx.http.post("/api/messages/sms", other, { headers: { "idempotency-key": key } }), 422, "idempotency_key_reused", "the key with another body");
    },
  },
  {
    id: "idempotency.in-flight",
    title: "requests racing with one key write one message; a twin still in flight is 409 idempotency_key_in_use",
    tags: ["idempotency", "sends", "concurrency", "errors"],
    spec: "§5 same key while the first request is still in flight: 409 idempotency_key_in_use",
    async run(ctx) {
      const key = ctx.data.idempotencyKey();
      const payload = smsPayload(ctx);
      const answers = await Promise.all(
        Array.from({ length: CONCURRENT_TWINS }, () => ctx.http.post("/api/messages/sms", payload, { headers: { "idempotency-key": key } })),
      );
      const written = answers.filter((a) => a.status === 202 && a.headers.get("idempotent-replayed") !== "true");
      const replays = answers.filter((a) => a.status === 202 && a.headers.get("idempotent-replayed") === "true");
      const inFlight = answers.filter((a) => a.status === 409);
      checkEqual(written.length, 1, "requests that wrote");
      for (const a of inFlight) checkError(a, 409, "idempotency_key_in_use", "a twin in flight");
      for (const a of replays) checkEqual(a.body, written[0]!.body, "a replay's body");
      const other = answers.filter((a) => a.status !== 202 && a.status !== 409);
      check(other.length === 0, `unexpected answers: ${show(other.map((a) => `${a.status} ${a.text}`))}`);
      ctx.note(`${inFlight.length} of ${CONCURRENT_TWINS} twins overlapped the first (409), ${replays.length} were replays`);
      checkEqual((await messagesOf(ctx, String(written[0]!.body.conversation_id))).length, 1, "messages stored");
    },
  },
  {
    id: "idempotency.bad-keys",
    title: "an empty, over-long or non-visible-ASCII key is a 400",
    tags: ["idempotency", "validation", "errors"],
    spec: "§5 a key is 1–255 visible ASCII characters; otherwise 400",
    async run(ctx) {
      for (const [what, key] of [
        ["a key of 256 characters", "k".repeat(256)],
        ["a key with a space", "two words"],
        ["an empty key", ""],
      ] as const) {
        const a = await ctx.http.post("/api/messages/sms", smsPayload(ctx), { headers: { "idempotency-key": key } });
        checkError(a, 400, ["bad_request", "validation_failed"], what);
      }
      const longest = await ctx.http.post("/api/messages/sms", smsPayload(ctx), { headers: { "idempotency-key": `${ctx.data.idempotencyKey()}-`.padEnd(255, "k") } });
      checkStatus(longest, 202, "a key of 255 characters");
    },
  },
  {
    id: "idempotency.refusal-keeps-key",
    title: "a request refused by validation does not use up its key",
    tags: ["idempotency", "validation"],
    spec: "§5 a request that failed validation or was rate-limited does not consume the key",
    async run(ctx) {
      const key = ctx.data.idempotencyKey();
      checkStatus(await ctx.http.post("/api/messages/sms", smsPayload(ctx, { to: "1" }), { headers: { "idempotency-key": key } }), 400, "an invalid body with the key");
      const valid = await ctx.http.post("/api/messages/sms", smsPayload(ctx), { headers: { "idempotency-key": key } });
      checkAccepted(valid, "a valid body with the same key");
      check(valid.headers.get("idempotent-replayed") !== "true", "the valid body was answered as a replay");
    },
  },
  {
    id: "idempotency.scoped-by-route",
    title: "one key on two routes is two independent requests",
    tags: ["idempotency"],
    spec: "§5 keys are scoped to (API key, route)",
    async run(ctx) {
      const key = ctx.data.idempotencyKey();
      const sms = checkAccepted(await ctx.http.post("/api/messages/sms", smsPayload(ctx), { headers: { "idempotency-key": key } }), "the key on the SMS route");
      const email = checkAccepted(await ctx.http.post("/api/messages/email", emailPayload(ctx), { headers: { "idempotency-key": key } }), "the key on the email route");
      check(sms.id !== email.id, "the email route replayed the SMS route's answer");
    },
  },
  {
    id: "idempotency.webhooks",
    title: "webhooks honour Idempotency-Key too",
    tags: ["idempotency", "webhooks"],
    spec: "§5 header Idempotency-Key on the four POST routes",
    needs: ["webhooks"],
    async run(ctx) {
      const key = ctx.data.idempotencyKey();
      const payload = inboundSmsPayload(ctx);
      const first = await ctx.http.post("/api/webhooks/sms", payload, { headers: { "idempotency-key": key } });
      checkAccepted(first, "the first webhook");
      const again = await ctx.http.post("/api/webhooks/sms", payload, { headers: { "idempotency-key": key } });
      checkEqual(again.body, first.body, "the replayed body");
      checkEqual(again.headers.get("idempotent-replayed"), "true", "Idempotent-Replayed of the replay");
      const other = inboundSmsPayload(ctx);
      checkError(await ctx.http.post("/api/webhooks/sms", other, { headers: { "idempotency-key": key } }), 422, "idempotency_key_reused", "the key with another webhook");
    },
  },
];
