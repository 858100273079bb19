/**
 * Migration 0016 moves the delivery queue from `delivery_jobs` onto the message rows (delivery/jobs.ts): jobs
 * waiting when it runs must carry over with their due time, their calls so far and their holder's claim, on
 * PostgreSQL and on the embedded database alike.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { migrations } from "../../drizzle/manifest.ts";
import { type DatabaseHandle, openPostgres } from "../../src/db/client.ts";
import { migrateUp } from "../../src/db/migrate.ts";
import { createEmbeddedTestDatabase, createTestDatabase } from "../helpers/database.ts";

const BEFORE = migrations.slice(0, migrations.findIndex((m) => m.tag === "0016_message_queue"));

const targets = {
  async postgres() {
    const pg = await createTestDatabase();
    const handle = openPostgres(pg.url, 1);
    return { handle, dispose: async () => (await handle.close(), await pg.drop()) };
  },
  async embedded() {
    const e = await createEmbeddedTestDatabase();
    return { handle: e.handle, dispose: e.remove };
  },
};

interface Row {
  body: string;
  status: string;
  due: boolean | null;
  in_queue: boolean;
  attempts: number;
  locked_by: string | null;
  leased: boolean;
}

describe.each(["postgres", "embedded"] as const)("migration 0016 on %s", (kind) => {
  let handle: DatabaseHandle;
  let dispose: () => Promise<void>;
  beforeAll(async () => {
    ({ handle, dispose } = await targets[kind]());
    expect(BEFORE.length).toBe(15);
    await migrateUp(handle.db, BEFORE);
    await handle.sql.query(`
      WITH c AS (
        INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
        VALUES ('sms', '+12035550100', '+18045550100', 'sms:+12035550100<->+18045550100', 6, now()) RETURNING id),
      m AS (
        INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp)
        SELECT c.id, 'outbound', 'sms', 'sms', '+12035550100', '+18045550100', v.body, v.status, now()
          FROM c, (VALUES ('due', 'queued'), ('held', 'sending'), ('retry', 'sending'), ('settled', 'delivered'),
                          ('scheduled', 'scheduled'), ('sent', 'sent')) AS v(body, status)
        RETURNING id, body)
      INSERT INTO delivery_jobs (message_id, run_at, attempts, locked_by, locked_until)
      SELECT m.id,
             CASE m.body WHEN 'retry' THEN now() + interval '1 hour' ELSE now() END,
             CASE m.body WHEN 'retry' THEN 3 WHEN 'held' THEN 1 ELSE 0 END,
             CASE m.body WHEN 'held' THEN 'worker-a#7' END,
             CASE m.body WHEN 'held' THEN now() + interval '1 hour' END
        FROM m WHERE m.body IN ('due', 'held', 'retry', 'settled')`);
    await migrateUp(handle.db);
  });
  afterAll(() => dispose());

  test("every waiting job is on its message, with its due time, calls and claim; settled and never-queued ones are not", async () => {
    const rows = await handle.sql.query<Row>(`
      SELECT body, status, run_at <= now() AS due, run_at IS NOT NULL AS in_queue, attempts, locked_by,
             coalesce(locked_until > now(), false) AS leased
        FROM messages ORDER BY id`);
    expect(rows).toEqual([
      { body: "due", status: "queued", due: true, in_queue: true, attempts: 0, locked_by: null, leased: false },
      { body: "held", status: "sending", due: true, in_queue: true, attempts: 1, locked_by: "worker-a#7", leased: true },
      { body: "retry", status: "sending", due: false, in_queue: true, attempts: 3, locked_by: null, leased: false },
      { body: "settled", status: "delivered", due: null, in_queue: false, attempts: 0, locked_by: null, leased: false },
      { body: "scheduled", status: "scheduled", due: null, in_queue: false, attempts: 0, locked_by: null, leased: false },
      { body: "sent", status: "sent", due: null, in_queue: false, attempts: 0, locked_by: null, leased: false },
    ]);
  });

  test("the job table is gone and the due index holds the queue", async () => {
    const [row] = await handle.sql.query<{ jobs: string | null; idx: string | null }>(
      "SELECT to_regclass('delivery_jobs')::text AS jobs, to_regclass('messages_due_idx')::text AS idx",
    );
    expect(row).toEqual({ jobs: null, idx: "messages_due_idx" });
  });
});
