import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { migrations as embedded } from "../../drizzle/manifest.ts";
import { type DatabaseHandle, openPostgres, queryRows } from "../../src/db/client.ts";
import { checksum, isCurrent, type Migration, MigrationError, migrateUp, migrationStatus } from "../../src/db/migrate.ts";
import { createEmbeddedTestDatabase, createTestDatabase } from "../helpers/database.ts";

const TAGS = embedded.map((m) => m.tag);

/** A database of one kind plus a way to reach it a second time, as a second machine would. */
interface Target {
  handle: DatabaseHandle;
  /** A second handle for concurrent runners: a separate connection on PostgreSQL; the same handle on PGlite,
   *  which is one in-process connection and cannot be opened twice. */
  second(): DatabaseHandle;
  dispose(): Promise<void>;
}

const targets: Record<"postgres" | "embedded", () => Promise<Target>> = {
  async postgres() {
    const pg = await createTestDatabase();
    const handle = openPostgres(pg.url, 2);
    const extra: DatabaseHandle[] = [];
    return {
      handle,
      second: () => {
        const h = openPostgres(pg.url, 1);
        extra.push(h);
        return h;
      },
      dispose: async () => {
        await Promise.all([handle, ...extra].map((h) => h.close()));
        await pg.drop();
      },
    };
  },
  async embedded() {
    const e = await createEmbeddedTestDatabase();
    return { handle: e.handle, second: () => e.handle, dispose: e.remove };
  },
};

const tableExists = async (h: DatabaseHandle, name: string) =>
  (await queryRows<{ t: string | null }>(h.db, sql`select to_regclass(${name})::text as t`))[0]?.t != null;

describe.each(["postgres", "embedded"] as const)("migration runner on %s", (kind) => {
  let target: Target;
  let db: DatabaseHandle["db"];
  beforeAll(async () => {
    target = await targets[kind]();
    db = target.handle.db;
  });
  afterAll(() => target.dispose());

  // The tests below run in order on one database: fresh → migrated → extra migrations.
  test("status lists every embedded migration as pending on a fresh database", async () => {
    const status = await migrationStatus(db);
    expect(status).toEqual(TAGS.map((tag) => ({ tag, state: "pending", appliedAt: null })));
    expect(isCurrent(status)).toBe(false);
  });

  test("up applies every embedded migration, in journal order, on a fresh database", async () => {
    expect(await migrateUp(db)).toEqual(TAGS);
    for (const table of ["conversations", "messages", "delivery_attempts", "idempotency_keys"]) {
      expect(await tableExists(target.handle, table)).toBe(true);
    }
  });

  test("status then lists every migration as applied, with its time", async () => {
    const status = await migrationStatus(db);
    expect(status.map((s) => [s.tag, s.state])).toEqual(TAGS.map((tag) => [tag, "applied"]));
    for (const s of status) expect(s.appliedAt!.getTime()).toBeGreaterThan(Date.now() - 5 * 60_000);
    expect(isCurrent(status)).toBe(true);
  });

  test("a second up applies nothing", async () => {
    expect(await migrateUp(db)).toEqual([]);
  });

  test("the checksum of each applied migration is recorded", async () => {
    const rows = await queryRows<{ tag: string; checksum: string }>(db, sql`select tag, checksum from messaging_migrations order by tag`);
    expect(rows).toEqual(embedded.map((m) => ({ tag: m.tag, checksum: checksum(m.sql) })));
  });

  test("two runners at once (on PostgreSQL over separate connections) both succeed and apply a new migration exactly once", async () => {
    const probe: Migration = {
      tag: "9001_concurrency_probe",
      // Not idempotent on purpose: a second application would fail on the CREATE, or insert a second row.
      sql: "create table concurrency_probe (n integer not null);\n--> statement-breakpoint\ninsert into concurrency_probe values (1);",
    };
    const list = [...embedded, probe];
    const other = target.second();
    const results = await Promise.all([migrateUp(db, list), migrateUp(other.db, list)]);
    expect(results.flat()).toEqual([probe.tag]);
    const [row] = await queryRows<{ n: number }>(db, sql`select count(*)::int as n from concurrency_probe`);
    expect(row!.n).toBe(1);
  });

  test("a migration unknown to this binary (applied by a newer one) is listed as unknown and does not block", async () => {
    const status = await migrationStatus(db); // the embedded list lacks the probe applied above
    expect(status.at(-1)).toMatchObject({ tag: "9001_concurrency_probe", state: "unknown" });
    expect(isCurrent(status)).toBe(true);
    expect(await migrateUp(db)).toEqual([]);
  });

  test("a failing migration is rolled back whole and not recorded", async () => {
    const broken: Migration = {
      tag: "9002_broken",
      sql: "create table half_done (n integer);\n--> statement-breakpoint\nselect * from no_such_table;",
    };
    await expect(migrateUp(db, [...embedded, broken])).rejects.toThrow(/no_such_table/);
    expect(await tableExists(target.handle, "half_done")).toBe(false);
    const status = await migrationStatus(db, [...embedded, broken]);
    expect(status.find((s) => s.tag === broken.tag)).toEqual({ tag: broken.tag, state: "pending", appliedAt: null });
  });

  test("an applied migration that was edited is reported as modified and refused by up, naming its tag", async () => {
    const edited = embedded.map((m, i) => (i === 0 ? { tag: m.tag, sql: `${m.sql}\n-- an innocent-looking edit` } : m));
    const status = await migrationStatus(db, edited);
    expect(status[0]).toMatchObject({ tag: TAGS[0], state: "modified" });
    expect(isCurrent(status)).toBe(false);

    const refused = migrateUp(db, [...edited, { tag: "9003_after_edit", sql: "create table after_edit (n integer);" }]);
    await expect(refused).rejects.toBeInstanceOf(MigrationError);
    await expect(refused).rejects.toThrow(`migration ${TAGS[0]} was applied to this database and has since been edited`);
    // Refused before doing anything: the later migration was not applied either.
    expect(await tableExists(target.handle, "after_edit")).toBe(false);
  });
});

describe("drizzle/manifest.ts", () => {
  const dir = join(import.meta.dir, "..", "..", "drizzle");
  const journal = JSON.parse(readFileSync(join(dir, "meta", "_journal.json"), "utf8")) as { entries: { idx: number; tag: string }[] };

  test("lists exactly the entries of drizzle/meta/_journal.json, in order", () => {
    const fromJournal = [...journal.entries].sort((a, b) => a.idx - b.idx).map((e) => e.tag);
    expect(TAGS).toEqual(fromJournal);
  });

  test("embeds each migration's SQL file unchanged", () => {
    for (const m of embedded) expect(m.sql).toBe(readFileSync(join(dir, `${m.tag}.sql`), "utf8"));
  });
});
