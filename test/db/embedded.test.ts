import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/pglite";

import {
  closeEmbeddedDatabase,
  openEmbeddedDatabase,
} from "../../src/db/embedded.ts";

const root = await mkdtemp(join(tmpdir(), "embedded-pg-test-"));
// A nested path that does not exist yet: openEmbeddedDatabase must mkdir -p it.
const dataDir = join(root, "nested", "data");

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("embedded PostgreSQL (PGlite)", () => {
  test("initialises a new data dir, persists across close/reopen", async () => {
    const first = await openEmbeddedDatabase(dataDir);
    try {
      await first.exec(
        "create table note (id integer primary key, body text not null)",
      );
      await first.query("insert into note (id, body) values ($1, $2)", [
        1,
        "hello",
      ]);
    } finally {
      await closeEmbeddedDatabase(first);
    }
    expect(first.closed).toBe(true);
    // Closing twice is harmless.
    await closeEmbeddedDatabase(first);

    const second = await openEmbeddedDatabase(dataDir);
    try {
      const { rows } = await second.query<{ id: number; body: string }>(
        "select id, body from note order by id",
      );
      expect(rows).toEqual([{ id: 1, body: "hello" }]);
    } finally {
      await closeEmbeddedDatabase(second);
    }
  });

  test("advisory locks, upsert with RETURNING, and drizzle on top", async () => {
    const pg = await openEmbeddedDatabase(dataDir);
    try {
      const db = drizzle(pg);

      const one = await db.execute<{ one: number }>(sql`select 1 as one`);
      expect(one.rows).toEqual([{ one: 1 }]);

      // Transaction-scoped advisory lock (we rely on these).
      const locked = await db.transaction(async (tx) => {
        const r = await tx.execute<{ locked: boolean }>(
          sql`select pg_try_advisory_xact_lock(1) as locked`,
        );
        return r.rows[0]?.locked;
      });
      expect(locked).toBe(true);

      // Same via the raw PGlite transaction API.
      const rawLocked = await pg.transaction(async (tx) => {
        const r = await tx.query<{ locked: boolean }>(
          "select pg_try_advisory_xact_lock(1) as locked",
        );
        return r.rows[0]?.locked;
      });
      expect(rawLocked).toBe(true);

      // INSERT ... ON CONFLICT ... DO UPDATE ... RETURNING
      const upsert = (body: string) =>
        db.execute<{ id: number; body: string; inserted: boolean }>(sql`
          insert into note (id, body) values (1, ${body})
          on conflict (id) do update set body = excluded.body
          returning id, body, (xmax = 0) as inserted`);
      const updated = await upsert("updated");
      expect(updated.rows).toEqual([{ id: 1, body: "updated", inserted: false }]);

      const fresh = await db.execute<{ id: number; inserted: boolean }>(sql`
        insert into note (id, body) values (2, 'new')
        on conflict (id) do update set body = excluded.body
        returning id, (xmax = 0) as inserted`);
      expect(fresh.rows).toEqual([{ id: 2, inserted: true }]);

      // A failing drizzle transaction rolls back.
      await expect(
        db.transaction(async (tx) => {
          await tx.execute(sql`insert into note (id, body) values (3, 'gone')`);
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      const count = await db.execute<{ n: number }>(
        sql`select count(*)::int as n from note`,
      );
      expect(count.rows).toEqual([{ n: 2 }]);
    } finally {
      await closeEmbeddedDatabase(pg);
    }
  });
});
