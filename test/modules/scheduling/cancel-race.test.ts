/**
 * A cancel racing a dispatch (SPEC §3, issue 18): 200 times, a message is sent and canceled while the workers
 * claim as fast as they can. Each race ends one of two ways and never a third: the cancel answers 200 and the
 * provider never sees the message (status `canceled`), or it answers 409 with the status a worker gave it and
 * the message goes out exactly once (status `sent`). The same for scheduled messages racing the promoter.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger } from "../../../src/observability/logger.ts";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { post, smsSend, UNLIMITED } from "../../helpers/messaging.ts";
import { RecordingProvider, startWorkers } from "./workers.ts";

interface Race {
  id: string;
  cancel: { status: number; json: { status?: string; code?: string } };
}

async function settle(t: TestApp, provider: RecordingProvider, races: Race[]): Promise<{ canceled: number; sent: number }> {
  const ids = races.map((r) => r.id);
  const deadline = Date.now() + 15_000;
  let rows: { id: string; status: string }[] = [];
  for (;;) {
    rows = await t.database.sql.query<{ id: string; status: string }>("SELECT id::text AS id, status FROM messages WHERE id = ANY($1::bigint[])", [
      `{${ids.join(",")}}`,
    ]);
    if (rows.every((r) => r.status === "canceled" || r.status === "sent") || Date.now() > deadline) break;
    await Bun.sleep(20);
  }
  // A canceled message must stay unsent: give a worker that wrongly held it time to call.
  await Bun.sleep(200);
  const statusOf = new Map(rows.map((r) => [r.id, r.status]));
  let canceled = 0;
  let sent = 0;
  for (const race of races) {
    const final = statusOf.get(race.id);
    if (race.cancel.status === 200) {
      expect({ id: race.id, final, calls: provider.callsOf(race.id), answered: race.cancel.json.status }).toEqual({
        id: race.id,
        final: "canceled",
        calls: 0,
        answered: "canceled",
      });
      canceled += 1;
    } else {
      expect(race.cancel.status).toBe(409);
      expect(race.cancel.json.code).toBe("not_cancelable");
      expect(["sending", "sent"]).toContain(String(race.cancel.json.status));
      expect({ id: race.id, final, calls: provider.callsOf(race.id) }).toEqual({ id: race.id, final: "sent", calls: 1 });
      sent += 1;
    }
  }
  return { canceled, sent };
}

describe("cancel racing dispatch on postgres", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ config: UNLIMITED, logger: createLogger({ level: "error" }) });
  });
  afterAll(() => t.close());

  test("200 races of a queued message against the claim: canceled and never sent, or 409 and sent once", async () => {
    const provider = new RecordingProvider();
    const workers = startWorkers(t, provider, { dispatch: { pollMs: 2, batchSize: 5 } });
    const races: Race[] = [];
    try {
      for (let round = 0; round < 10; round++) {
        races.push(
          ...(await Promise.all(
            Array.from({ length: 20 }, async (_, i) => {
              const res = await post(t.app, "/api/messages/sms", smsSend());
              expect(res.status).toBe(202);
              // Stagger the cancels over the claim loop's cycle, so both orders happen.
              await Bun.sleep(i % 5);
              const cancel = await post(t.app, `/api/messages/${res.json.id}/cancel`, undefined);
              return { id: res.json.id as string, cancel };
            }),
          )),
        );
      }
      const outcome = await settle(t, provider, races);
      console.log(`queued races: ${outcome.canceled} canceled, ${outcome.sent} sent`);
      expect(outcome.canceled + outcome.sent).toBe(200);
      expect(outcome.canceled).toBeGreaterThan(0);
      expect(outcome.sent).toBeGreaterThan(0);
    } finally {
      await workers.stop();
    }
  }, 60_000);

  test("100 races of a scheduled message against the promoter and the claim", async () => {
    const provider = new RecordingProvider();
    const workers = startWorkers(t, provider, { pollMs: 5, dispatch: { pollMs: 2, batchSize: 5 } });
    const races: Race[] = [];
    try {
      for (let round = 0; round < 5; round++) {
        races.push(
          ...(await Promise.all(
            Array.from({ length: 20 }, async (_, i) => {
              const dueIn = 30;
              const res = await post(t.app, "/api/messages/sms", smsSend({ send_at: new Date(Date.now() + dueIn).toISOString() }));
              expect(res.status).toBe(202);
              await Bun.sleep(dueIn + (i % 10) * 2);
              const cancel = await post(t.app, `/api/messages/${res.json.id}/cancel`, undefined);
              return { id: res.json.id as string, cancel };
            }),
          )),
        );
      }
      const outcome = await settle(t, provider, races);
      console.log(`scheduled races: ${outcome.canceled} canceled, ${outcome.sent} sent`);
      expect(outcome.canceled + outcome.sent).toBe(100);
    } finally {
      await workers.stop();
    }
  }, 60_000);
});
