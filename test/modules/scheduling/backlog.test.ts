/**
 * A backlog of scheduled messages all due at once drains at the rate delivery takes it, without stalling fresh
 * sends (issue 18): the promoter hands a batch over only while the queue holds less than half a batch of due
 * messages, so a fresh send finds at most about one batch of the backlog ahead of it. The provider here takes
 * 20 ms a call and one worker holds ten calls at a time: at most 500 messages a second.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { accepted, type ProviderOutcome } from "../../../src/providers/provider.ts";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { post, smsSend, UNLIMITED } from "../../helpers/messaging.ts";
import { RecordingProvider, startWorkers } from "./workers.ts";

class SlowProvider extends RecordingProvider {
  override async send(message: { id: string }): Promise<ProviderOutcome> {
    await Bun.sleep(20);
    return super.send(message);
  }
}

const BACKLOG = 1500;

describe("a backlog of scheduled messages on postgres", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ config: UNLIMITED });
  });
  afterAll(() => t.close());

  test(`${BACKLOG} due in the same second drain once each, and fresh sends meanwhile do not wait for them`, async () => {
    // Stored as the send path stores scheduled messages, due one second from now.
    const [seed] = await t.database.sql.query<{ due: string }>(
      `WITH c AS (
         INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
         VALUES ('sms', '+12065550000', '+18045550009', 'sms:+12065550000<->+18045550009', $1, now()) RETURNING id),
       m AS (
         INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp, send_at)
         SELECT c.id, 'outbound', 'sms', 'sms', '+12065550000', '+18045550009', 'backlog ' || n, 'scheduled', now(), now() + interval '1 second'
           FROM c, generate_series(1, $1::int) n RETURNING id, send_at),
       s AS (INSERT INTO scheduled_messages (message_id, send_at) SELECT id, send_at FROM m)
       SELECT (extract(epoch FROM min(send_at)) * 1000)::text AS due FROM m`,
      [BACKLOG],
    );
    const due = Number(seed!.due);
    const provider = new SlowProvider();
    const workers = startWorkers(t, provider, { batchSize: 100, dispatch: { workers: 1, batchSize: 10, pollMs: 20 } });
    try {
      await Bun.sleep(Math.max(0, due - Date.now()) + 300);
      const fresh: { id: string; sentAt: number }[] = [];
      for (let i = 0; i < 20; i++) {
        const res = await post(t.app, "/api/messages/sms", smsSend());
        expect(res.status).toBe(202);
        fresh.push({ id: res.json.id, sentAt: Date.now() });
        await Bun.sleep(100);
      }
      const deadline = Date.now() + 60_000;
      while (provider.calls.size < BACKLOG + fresh.length && Date.now() < deadline) await Bun.sleep(50);
      const lastBacklogCall = Math.max(...[...provider.calls.entries()].filter(([id]) => !fresh.some((f) => f.id === id)).map(([, at]) => at[0]!));
      const latencies = fresh.map((f) => provider.calls.get(f.id)![0]! - f.sentAt);
      console.log(`backlog drained ${lastBacklogCall - due} ms after due; fresh latencies max ${Math.max(...latencies)} ms`);
      expect(provider.calls.size).toBe(BACKLOG + fresh.length);
      expect([...provider.calls.values()].every((calls) => calls.length === 1)).toBe(true);
      // The backlog took seconds (at least 1500 calls / 500 a second); each fresh send went out long before it was
      // drained, waiting at most about a batch of it (all of it queued at once would have made them wait for it all).
      const drain = lastBacklogCall - due;
      expect(drain).toBeGreaterThan(2500);
      for (const f of fresh) expect(provider.calls.get(f.id)![0]!).toBeLessThan(lastBacklogCall);
      expect(Math.max(...latencies)).toBeLessThan(drain / 4);
    } finally {
      await workers.stop();
    }
  }, 90_000);
});
