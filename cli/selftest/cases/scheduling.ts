import { type Case, type CaseContext, check, checkEqual, checkError, checkStatus, fail, show } from "../case.ts";
import { accept, eventually, getMessage, type Json, smsPayload } from "./fixtures.ts";

/**
 * How far ahead the cases schedule: long enough to look before it is due, short enough for a quick run. Waits on
 * the target's rate limit are added on top (scheduleOne), so this covers a few unpaced round trips only.
 */
const AHEAD_MS = 2000;
/** Statuses a scheduled message ends in once the service has sent it, or tried to. */
const ENDED = ["sent", "delivered", "failed", "undelivered"];

/**
 * Schedules an SMS `AHEAD_MS` from now, plus however long the case's next `requestsBeforeDue` requests (the send
 * and the look included) may wait on the target's rate limit when the run is paced by it: a case that waited
 * past send_at for its turn would see the service's clock, not the behaviour it checks. Skips the case when the
 * target answers 202 but does not schedule.
 */
async function scheduleOne(ctx: CaseContext, requestsBeforeDue: number): Promise<{ id: string; sendAt: number }> {
  const paced = ctx.http.paceBoundMs(requestsBeforeDue);
  const sendAt = Date.now() + AHEAD_MS + Math.ceil(paced);
  if (paced > 0) ctx.note(`send_at ${((AHEAD_MS + paced) / 1000).toFixed(1)} s ahead: the run is paced by the target's rate limit`);
  const a = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { send_at: new Date(sendAt).toISOString() }), "a send with send_at ahead");
  const m = await getMessage(ctx, a.id);
  if (m.status !== "scheduled") ctx.skip(`the target does not schedule: a send with send_at is ${show(m.status)}, not scheduled`);
  check(typeof m.send_at === "string" && Math.abs(Date.parse(m.send_at) - sendAt) < 1000, `send_at of the message is ${show(m.send_at)}`);
  return { id: a.id, sendAt };
}

/** Reads message `id` until it has ended, starting at `sendAt` (there is nothing to see before it). */
async function ended(ctx: CaseContext, id: string, sendAt: number): Promise<Json> {
  await Bun.sleep(Math.max(0, sendAt - Date.now()));
  return eventually(
    () => getMessage(ctx, id),
    (m) => ENDED.includes(String(m.status)),
    250,
  );
}

/** SPEC §3 `send_at` and `POST /api/messages/{id}/cancel`, through the mock provider. */
export const schedulingCases: Case[] = [
  {
    id: "scheduling.sent",
    title: "a message scheduled 2 s ahead (more when the run is paced) waits, then is sent after its send_at",
    tags: ["scheduling", "sends", "delivery", "mock"],
    spec: "§3 send_at schedules the message (status scheduled); §1 scheduled → queued → sending → sent",
    lane: "mock",
    // Only waits for send_at with the mock as it is, beside the other scheduling case.
    sideBySide: true,
    needs: ["mock"],
    minTimeoutSecs: 30,
    async run(ctx) {
      // Before send_at: the send, the look at it, and a second look.
      const { id, sendAt } = await scheduleOne(ctx, 3);
      const early = await getMessage(ctx, id);
      if (Date.now() < sendAt - 200) {
        checkEqual([early.status, (early.attempts as Json[]).length], ["scheduled", 0], "status and attempts before send_at");
      }
      const m = await ended(ctx, id, sendAt);
      if (m.status !== "sent" && m.status !== "delivered") fail(`the scheduled message ended ${show(m.status)}: ${show(m.status_reason)}`);
      const first = (m.attempts as Json[])[0];
      check(first !== undefined, "the sent message has no attempt recorded");
      const startedAt = Date.parse(String(first.started_at));
      check(startedAt >= Date.parse(String(m.send_at)), `its provider was called at ${String(first.started_at)}, before its send_at ${String(m.send_at)}`);
      ctx.note(`first provider call ${startedAt - Date.parse(String(m.send_at))} ms after send_at`);
    },
  },
  {
    id: "scheduling.cancel",
    title: "a canceled scheduled message answers 200 twice, is listed as canceled and is never sent; unknown ids are 404",
    tags: ["scheduling", "cancel", "mock"],
    spec: "§3 POST /api/messages/{id}/cancel → 200 with the message (status canceled), also when already canceled; unknown → 404",
    lane: "mock",
    // Only waits for send_at with the mock as it is, beside the other scheduling case.
    sideBySide: true,
    needs: ["mock"],
    minTimeoutSecs: 30,
    async run(ctx) {
      // Before send_at: the send, the look at it, the control's send and the cancel.
      const { id, sendAt } = await scheduleOne(ctx, 4);
      // Due at the same moment and scheduled after it, a control left alone: once the service has sent it, it has
      // been past the canceled message's send_at too, however long it takes to get there.
      const control = await accept(ctx, "/api/messages/sms", smsPayload(ctx, { send_at: new Date(sendAt).toISOString() }), "a second send, due at the same moment");
      for (const what of ["the cancel", "a second cancel"]) {
        const r = await ctx.http.post(`/api/messages/${id}/cancel`, {});
        checkStatus(r, 200, what);
        checkEqual([r.body.id, r.body.status], [id, "canceled"], `id and status answered by ${what}`);
      }
      const listed = await ctx.http.get("/api/messages?status=scheduled&pageSize=50");
      checkStatus(listed, 200, "GET /api/messages?status=scheduled");
      check(!(listed.body.items as Json[]).some((m) => m.id === id), "the canceled message is still listed as scheduled");
      const c = await ended(ctx, control.id, sendAt);
      if (c.status !== "sent" && c.status !== "delivered") fail(`the message due with the canceled one ended ${show(c.status)}: ${show(c.status_reason)}`);
      const m = await getMessage(ctx, id);
      checkEqual([m.status, (m.attempts as Json[]).length], ["canceled", 0], "status and attempts once a message due at the same moment was sent");
      checkError(await ctx.http.post("/api/messages/999999999999/cancel", {}), 404, "not_found", "a cancel of an unknown id");
    },
  },
];
