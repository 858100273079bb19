/** The counters migration starts the total at the conversations an existing database already holds. */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { migrations as embedded } from "../../drizzle/manifest.ts";
import { type DatabaseHandle, openPostgres } from "../../src/db/client.ts";
import { migrateUp } from "../../src/db/migrate.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { expectCountersExact } from "../helpers/counters.ts";

let pg: TestDatabase;
let handle: DatabaseHandle;
beforeAll(async () => {
  pg = await createTestDatabase();
  handle = openPostgres(pg.url, 2);
});
afterAll(async () => {
  await handle.close();
  await pg.drop();
});

test("an upgraded database with 37 conversations reads a total of 37 at once", async () => {
  const before = embedded.findIndex((m) => m.tag === "0005_counters");
  expect(before).toBeGreaterThan(0);
  await migrateUp(handle.db, embedded.slice(0, before));
  await handle.sql.query(
    `INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
     SELECT 'sms', 'a' || i, 'b', 'sms:a' || i || '<->b', 0, now() FROM generate_series(1, 37) AS i`,
  );
  // Up to 0005 only: later migrations are not what this test is about.
  expect(await migrateUp(handle.db, embedded.slice(0, before + 1))).toEqual(["0005_counters"]);
  const [row] = await handle.sql.query<{ stripes: number; total: number }>(
    "SELECT count(*)::int AS stripes, sum(conversations)::int AS total FROM conversation_counters",
  );
  expect(row).toEqual({ stripes: 16, total: 37 });
  expect(await expectCountersExact(handle)).toBe(37);
});
