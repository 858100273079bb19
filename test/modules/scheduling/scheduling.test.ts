/**
 * Scheduled sends and cancelling (SPEC §3, issue 18) through the app, with the promoter and the dispatcher of
 * `serve` running over the same database and a recording provider: `send_at` bounds, the `scheduled` row and
 * its count in the conversation, dispatch after (never before) `send_at`, cancel before due, cancel of an
 * unclaimed queued message, the 200/409/404 answers, a STOP between scheduling and dispatch, Idempotency-Key
 * replays, retention leaving scheduled messages alone, and a backlog that does not stall fresh sends.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { purgeOldMessages } from "../../../src/modules/retention/service.ts";
import { Promoter } from "../../../src/modules/scheduling/service.ts";
import { createMetrics, type Metrics } from "../../../src/observability/metrics.ts";
import { VERSION } from "../../../src/version.ts";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { countJobs, countRows, emailSend, get, metricValue, post, smsSend, smsWebhook, UNLIMITED } from "../../helpers/messaging.ts";
import { RecordingProvider, silent, startWorkers } from "./workers.ts";

const inMs = (ms: number) => new Date(Date.now() + ms).toISOString();

async function until(check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(10);
  }
}

for (const database of ["postgres", "embedded"] as const) {
  describe(`scheduled sends on ${database}`, () => {
    let t: TestApp;
    let workers: ReturnType<typeof startWorkers> | undefined;
    beforeAll(async () => {
      t = await buildTestApp({ database, config: UNLIMITED });
    });
    afterEach(async () => {
      await workers?.stop();
      workers = undefined;
    });
    afterAll(() => t.close());

    const status = async (id: string) => (await get(t.app, `/api/messages/${id}`)).json.status as string;

    describe("send_at bounds", () => {
      test.each<[string, () => string, string]>([
        ["more than 60 s in the past", () => inMs(-61_000), "must not be more than 60 s in the past"],
        ["further ahead than MESSAGING_SCHEDULE_MAX_DAYS (35)", () => inMs(35 * 86_400_000 + 60_000), "must be at most 35 days ahead"],
        ["not RFC 3339", () => "tomorrow at 9", "must be an RFC 3339 date-time"],
        ["a date without a time", () => "2030-01-01", "must be an RFC 3339 date-time"],
      ])("%s is 400 validation_failed naming send_at", async (_name, sendAt, message) => {
        for (const body of [smsSend({ send_at: sendAt() }), emailSend({ send_at: sendAt() })]) {
          const path = "from" in body && String(body.from).includes("@") ? "/api/messages/email" : "/api/messages/sms";
          const before = await countRows(t.database, "messages");
          const res = await post(t.app, path, body);
          expect(res.status).toBe(400);
          expect(res.json.code).toBe("validation_failed");
          expect(res.json.details).toContainEqual({ path: "send_at", message: expect.stringContaining(message) });
          expect(await countRows(t.database, "messages")).toBe(before);
        }
      });

      test("within 60 s in the past (clock skew), or null, it is sent at once: queued, no send_at", async () => {
        for (const sendAt of [inMs(-59_000), null]) {
          const res = await post(t.app, "/api/messages/sms", smsSend({ send_at: sendAt }));
          expect(res.status).toBe(202);
          const item = (await get(t.app, `/api/messages/${res.json.id}`)).json;
          expect(item).toMatchObject({ status: "queued", send_at: null });
          expect(await countJobs(t.database, "message_id = $1", [res.json.id])).toBe(1);
        }
      });

      test("35 days ahead is accepted", async () => {
        const res = await post(t.app, "/api/messages/email", emailSend({ send_at: inMs(35 * 86_400_000 - 60_000) }));
        expect(res.status).toBe(202);
        expect(await status(res.json.id)).toBe("scheduled");
      });
    });

    test("a scheduled send answers 202, is stored scheduled with send_at, counted in its conversation, and is not queued", async () => {
      const sendAt = new Date(Date.now() + 3_600_000);
      const res = await post(t.app, "/api/messages/sms", smsSend({ send_at: sendAt.toISOString() }));
      expect(res.status).toBe(202);
      expect(res.json.status).toBe("accepted");
      expect(typeof res.json.conversation_id).toBe("string");
      const item = (await get(t.app, `/api/messages/${res.json.id}`)).json;
      expect(item).toMatchObject({ status: "scheduled", send_at: sendAt.toISOString() });
      const page = (await get(t.app, `/api/conversations/${res.json.conversation_id}/messages`)).json;
      expect(page.meta.total).toBe(1);
      expect(page.items[0]).toMatchObject({ id: res.json.id, status: "scheduled", send_at: sendAt.toISOString() });
      expect(await countJobs(t.database, "message_id = $1", [res.json.id])).toBe(0);
    });

    test("concurrent sends, half of them scheduled, share group commits and each lands where it belongs", async () => {
      const sendAt = inMs(3_600_000);
      const batches = async () => {
        const text = await t.metrics.registry.metrics();
        return { sends: metricValue(text, "messaging_send_batch_size_sum"), statements: metricValue(text, "messaging_send_batch_size_count") };
      };
      const before = await batches();
      const answers = await Promise.all(
        Array.from({ length: 40 }, (_, i) => post(t.app, "/api/messages/sms", smsSend(i % 2 === 0 ? { send_at: sendAt } : {}))),
      );
      expect(answers.every((a) => a.status === 202)).toBe(true);
      const after = await batches();
      // Fewer statements than sends: scheduled and immediate ones were written together.
      expect(after.statements - before.statements).toBeLessThan(after.sends - before.sends);
      for (const [i, a] of answers.entries()) {
        const scheduled = i % 2 === 0;
        const item = (await get(t.app, `/api/messages/${a.json.id}`)).json;
        expect([item.status, item.send_at]).toEqual(scheduled ? ["scheduled", new Date(sendAt).toISOString()] : ["queued", null]);
        expect(await countJobs(t.database, "message_id = $1", [a.json.id])).toBe(scheduled ? 0 : 1);
        const [row] = await t.database.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM scheduled_messages WHERE message_id = $1", [a.json.id]);
        expect(row!.n).toBe(scheduled ? 1 : 0);
      }
    });

    test("it is not sent before send_at and is sent soon after it: scheduled → queued → sending → sent", async () => {
      const provider = new RecordingProvider();
      workers = startWorkers(t, provider);
      const sendAt = Date.now() + 1500;
      const res = await post(t.app, "/api/messages/sms", smsSend({ send_at: new Date(sendAt).toISOString() }));
      workers.promoter.scheduled(new Date(sendAt));
      // Until 300 ms before send_at, however long the send took on a loaded machine (a 400 ms send once made a
      // fixed 1,200 ms sleep end after send_at).
      await Bun.sleep(Math.max(0, sendAt - 300 - Date.now()));
      expect(provider.callsOf(res.json.id)).toBe(0);
      expect(await status(res.json.id)).toBe("scheduled");
      await until(() => provider.callsOf(res.json.id) > 0, 5000);
      const calledAt = provider.calls.get(res.json.id)![0]!;
      expect(calledAt).toBeGreaterThanOrEqual(sendAt);
      expect(calledAt - sendAt).toBeLessThan(2000);
      await until(async () => (await status(res.json.id)) === "sent");
      expect(provider.callsOf(res.json.id)).toBe(1);
      const metrics = await workers.metrics.registry.metrics();
      expect(metricValue(metrics, "messaging_schedule_dispatch_lag_seconds_count")).toBe(1);
      expect(metricValue(metrics, "messaging_scheduled_promoted_total", { outcome: "queued" })).toBe(1);
    });

    test("a message scheduled by another instance (no local hint) is found by the poll", async () => {
      const provider = new RecordingProvider();
      workers = startWorkers(t, provider, { pollMs: 200 });
      const res = await post(t.app, "/api/messages/email", emailSend({ send_at: inMs(300) }));
      await until(() => provider.callsOf(res.json.id) === 1, 3000);
    });

    test("cancel before due: 200 canceled, again 200, and the provider never sees it", async () => {
      const provider = new RecordingProvider();
      workers = startWorkers(t, provider);
      const res = await post(t.app, "/api/messages/sms", smsSend({ send_at: inMs(600) }));
      const first = await post(t.app, `/api/messages/${res.json.id}/cancel`, undefined);
      expect(first.status).toBe(200);
      expect(first.json).toMatchObject({ id: res.json.id, status: "canceled" });
      const second = await post(t.app, `/api/messages/${res.json.id}/cancel`, undefined);
      expect(second.status).toBe(200);
      expect(second.json.status).toBe("canceled");
      await Bun.sleep(1200);
      expect(provider.callsOf(res.json.id)).toBe(0);
      expect(await status(res.json.id)).toBe("canceled");
      expect(await countJobs(t.database, "message_id = $1", [res.json.id])).toBe(0);
      // Still part of its conversation: canceling takes nothing out of the thread.
      expect((await get(t.app, `/api/conversations/${res.json.conversation_id}/messages`)).json.meta.total).toBe(1);
    });

    test("cancel of a queued message no worker claimed: 200; the next claim drops its job and calls no provider", async () => {
      const res = await post(t.app, "/api/messages/sms", smsSend());
      expect(await status(res.json.id)).toBe("queued");
      const cancel = await post(t.app, `/api/messages/${res.json.id}/cancel`, undefined);
      expect(cancel.status).toBe(200);
      expect(cancel.json.status).toBe("canceled");
      const provider = new RecordingProvider();
      workers = startWorkers(t, provider);
      await until(async () => (await countJobs(t.database, "message_id = $1", [res.json.id])) === 0, 3000);
      await Bun.sleep(200);
      expect(provider.callsOf(res.json.id)).toBe(0);
      expect(await status(res.json.id)).toBe("canceled");
    });

    test("cancel once sent is 409 not_cancelable with the status; an inbound message too; unknown ids 404", async () => {
      const provider = new RecordingProvider();
      workers = startWorkers(t, provider);
      const res = await post(t.app, "/api/messages/sms", smsSend());
      await until(async () => (await status(res.json.id)) === "sent");
      const refused = await post(t.app, `/api/messages/${res.json.id}/cancel`, undefined);
      expect(refused.status).toBe(409);
      expect(refused.json).toMatchObject({ code: "not_cancelable", status: "sent", request_id: expect.any(String) });
      const inbound = await post(t.app, "/api/webhooks/sms", smsWebhook());
      const inboundCancel = await post(t.app, `/api/messages/${inbound.json.id}/cancel`, undefined);
      expect(inboundCancel.status).toBe(409);
      expect(inboundCancel.json.status).toBe("received");
      for (const id of ["999999999", "abc", "0"]) {
        const missing = await post(t.app, `/api/messages/${id}/cancel`, undefined);
        expect(missing.status).toBe(404);
        expect(missing.json.code).toBe("not_found");
      }
    });

    test("a STOP after scheduling fails the message at send_at with recipient_opted_out; nothing is sent", async () => {
      const provider = new RecordingProvider();
      workers = startWorkers(t, provider);
      const body = smsSend({ send_at: inMs(700) });
      const res = await post(t.app, "/api/messages/sms", body);
      expect(res.status).toBe(202);
      const stop = await post(t.app, "/api/webhooks/sms", smsWebhook({ from: body.to, to: body.from, body: "STOP" }));
      expect(stop.status).toBe(202);
      await until(async () => (await status(res.json.id)) === "failed", 5000);
      const detail = (await get(t.app, `/api/messages/${res.json.id}`)).json;
      expect(detail.status_reason).toBe("recipient_opted_out");
      expect(detail.attempts).toEqual([]);
      expect(provider.callsOf(res.json.id)).toBe(0);
      expect(metricValue(await workers.metrics.registry.metrics(), "messaging_scheduled_promoted_total", { outcome: "failed" })).toBe(1);
    });

    test("an Idempotency-Key replay of a scheduled send answers the same 202 and stores one message", async () => {
      const body = smsSend({ send_at: inMs(3_600_000) });
      const key = `sched-${crypto.randomUUID()}`;
      const first = await post(t.app, "/api/messages/sms", body, { "idempotency-key": key });
      const again = await post(t.app, "/api/messages/sms", body, { "idempotency-key": key });
      expect(first.status).toBe(202);
      expect(again.status).toBe(202);
      expect(again.json).toEqual(first.json);
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(await countRows(t.database, "messages", "conversation_id = $1", [first.json.conversation_id])).toBe(1);
      expect(await status(first.json.id)).toBe("scheduled");
    });

    test("retention never purges a scheduled message, however old its timestamp", async () => {
      const res = await post(t.app, "/api/messages/sms", smsSend({ timestamp: "2001-01-01T00:00:00Z", send_at: inMs(3_600_000) }));
      const old = await post(t.app, "/api/messages/sms", smsSend({ timestamp: "2001-01-01T00:00:00Z" }));
      await purgeOldMessages(t.database.sql, 30);
      expect(await countRows(t.database, "messages", "id = $1", [res.json.id])).toBe(1);
      expect(await countRows(t.database, "messages", "id = $1", [old.json.id])).toBe(0);
      // Canceled, it is an ordinary old message again.
      expect((await post(t.app, `/api/messages/${res.json.id}/cancel`, undefined)).status).toBe(200);
      await purgeOldMessages(t.database.sql, 30);
      expect(await countRows(t.database, "messages", "id = $1", [res.json.id])).toBe(0);
    });

    test("GET /api/messages?status=scheduled lists what waits, oldest first, by page and by cursor", async () => {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await post(t.app, "/api/messages/sms", smsSend({ send_at: inMs(3_600_000) }))).json.id);
      const waiting = await countRows(t.database, "messages", "status = 'scheduled'");
      const seen: { id: string; status: string; send_at: string | null; snippet: string }[] = [];
      let res = await get(t.app, "/api/messages?status=scheduled&pageSize=2");
      expect(res.status).toBe(200);
      expect(res.json.meta).toMatchObject({ page: 1, page_size: 2, total: waiting });
      seen.push(...res.json.items);
      while (res.json.meta.next_cursor) {
        res = await get(t.app, `/api/messages?status=scheduled&pageSize=2&cursor=${encodeURIComponent(res.json.meta.next_cursor)}`);
        expect(res.status).toBe(200);
        expect(res.json.meta.page).toBeNull();
        seen.push(...res.json.items);
      }
      expect(seen).toHaveLength(waiting);
      expect(seen.every((m) => m.status === "scheduled" && m.send_at !== null && typeof m.snippet === "string")).toBe(true);
      const order = seen.map((m) => BigInt(m.id));
      expect(order).toEqual([...order].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      expect(seen.slice(-3).map((m) => m.id)).toEqual(ids);
      // Canceled, it leaves this list for the canceled one.
      await post(t.app, `/api/messages/${ids[0]}/cancel`, undefined);
      expect((await get(t.app, "/api/messages?status=scheduled&pageSize=50")).json.meta.total).toBe(waiting - 1);
      const canceled = await get(t.app, "/api/messages?status=canceled&page=1&pageSize=50");
      expect(canceled.json.items.map((m: { id: string }) => m.id)).toContain(ids[0]);
      expect(canceled.json.meta.total).toBe(await countRows(t.database, "messages", "status = 'canceled'"));
    });

    test("GET /api/messages refuses a missing or unknown status and another list's cursor with 400", async () => {
      for (const query of ["", "?status=pending", "?status=SCHEDULED"]) {
        const res = await get(t.app, `/api/messages${query}`);
        expect(res.status).toBe(400);
        expect(res.json.code).toBe("validation_failed");
        expect(res.json.details[0].path).toContain("status");
      }
      await post(t.app, "/api/messages/sms", smsSend({ send_at: inMs(3_600_000) }));
      await post(t.app, "/api/messages/sms", smsSend({ send_at: inMs(3_600_000) }));
      const first = await get(t.app, "/api/messages?status=scheduled&pageSize=1");
      const cursor = encodeURIComponent(first.json.meta.next_cursor);
      const wrong = await get(t.app, `/api/messages?status=queued&cursor=${cursor}`);
      expect(wrong.status).toBe(400);
      expect(wrong.json.details).toEqual([{ path: "query.cursor", message: "cursor belongs to the list of another status" }]);
    });

    test("events: message.scheduled when stored, then message.queued when due, or message.canceled when taken back", async () => {
      const provider = new RecordingProvider();
      workers = startWorkers(t, provider);
      const kept = await post(t.app, "/api/messages/sms", smsSend({ send_at: inMs(300) }));
      const taken = await post(t.app, "/api/messages/sms", smsSend({ send_at: inMs(3_600_000) }));
      expect((await post(t.app, `/api/messages/${taken.json.id}/cancel`, undefined)).status).toBe(200);
      await until(async () => (await status(kept.json.id)) === "sent", 5000);
      const typesOf = async (id: string) => {
        const seen: { type: string; sequence: number; status: string; send_at: string | null }[] = [];
        let after = "";
        for (;;) {
          const page = await get(t.app, `/api/events?limit=1000${after}`);
          expect(page.status).toBe(200);
          for (const e of page.json.items) if (e.data.id === id) seen.push({ type: e.type, sequence: e.sequence, status: e.data.status, send_at: e.data.send_at });
          if (!page.json.next_cursor || page.json.items.length === 0) return seen;
          after = `&after=${encodeURIComponent(page.json.next_cursor)}`;
        }
      };
      await until(async () => (await typesOf(kept.json.id)).length >= 3, 5000);
      const keptEvents = await typesOf(kept.json.id);
      expect(keptEvents.map((e) => [e.type, e.sequence])).toEqual([
        ["message.scheduled", 1],
        ["message.queued", 2],
        ["message.sent", 3],
      ]);
      expect(keptEvents[0]!.send_at).not.toBeNull();
      expect((await typesOf(taken.json.id)).map((e) => [e.type, e.sequence, e.status])).toEqual([
        ["message.scheduled", 1, "scheduled"],
        ["message.canceled", 2, "canceled"],
      ]);
    });

    test("the gauge counts what waits", async () => {
      const metrics: Metrics = createMetrics({ version: VERSION });
      const [row] = await t.database.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM scheduled_messages");
      const promoter = new Promoter({ sql: t.database.sql, metrics, logger: silent, onQueued: () => {} }, { pollMs: 1000, batchSize: 10, sampleMs: 50 });
      await post(t.app, "/api/messages/sms", smsSend({ send_at: inMs(3_600_000) }));
      promoter.start();
      await until(async () => metricValue(await metrics.registry.metrics(), "messaging_messages_scheduled") === row!.n + 1, 3000);
      await promoter.stop();
    });
  });
}

describe("the per-sender limit and scheduled sends", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ config: { rateLimitPerSenderPerMin: 1 } });
  });
  afterAll(() => t.close());

  test("a scheduled send is charged when it is accepted, not when it is due", async () => {
    const from = "+12025550199";
    const first = await post(t.app, "/api/messages/sms", smsSend({ from, send_at: inMs(3_600_000) }));
    expect(first.status).toBe(202);
    const second = await post(t.app, "/api/messages/sms", smsSend({ from, send_at: inMs(7_200_000) }));
    expect(second.status).toBe(429);
    expect(second.json.code).toBe("rate_limited");
    expect(await countRows(t.database, "messages")).toBe(1);
  });
});
