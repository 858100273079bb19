// The migrated template behind `createMigratedTestDatabase` (and so `buildTestApp`): a copy holds exactly what
// running the migrations leaves, a change to any migration names a new template, two processes asking for a
// missing one at once build it once between them, and templates of other migrations are dropped once stale.
import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import postgres from "postgres";
import { migrations as embedded } from "../../drizzle/manifest.ts";
import { openPostgres } from "../../src/db/client.ts";
import { isCurrent, type Migration, migrationStatus } from "../../src/db/migrate.ts";
import { createEmbeddedTestDatabase, createMigratedTestDatabase, migratedTemplateName, TEST_DATABASE_URL, type TestDatabase } from "./database.ts";

const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
const databases: TestDatabase[] = [];
/** Templates this file builds for migration lists of its own, dropped at the end. */
const ownTemplates: string[] = [];

afterAll(async () => {
  await Promise.all(databases.map((d) => d.drop()));
  for (const name of ownTemplates) await dropTemplate(name);
  await admin.end();
});

async function dropTemplate(name: string): Promise<void> {
  const [row] = await admin`select 1 from pg_database where datname = ${name}`;
  if (!row) return;
  await admin.unsafe(`alter database "${name}" with is_template false`);
  await admin.unsafe(`drop database "${name}" with (force)`);
}

/** The embedded migrations plus one of this test's, so the template is new to the server. */
function listOfOurOwn(): Migration[] {
  const table = `probe_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const list = [...embedded, { tag: "9999_template_probe", sql: `create table ${table} (n integer);` }];
  ownTemplates.push(migratedTemplateName(list));
  return list;
}

async function tablesOf(url: string): Promise<string[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ name: string }[]>`
      select table_name as name from information_schema.tables where table_schema = 'public' order by 1`;
    return rows.map((r) => r.name);
  } finally {
    await sql.end();
  }
}

describe("createMigratedTestDatabase", () => {
  test("gives a new database on which every embedded migration is applied, unmodified", async () => {
    const pg = await createMigratedTestDatabase();
    databases.push(pg);
    const handle = openPostgres(pg.url, 1);
    try {
      const status = await migrationStatus(handle.db);
      expect(status.map((s) => s.tag)).toEqual(embedded.map((m) => m.tag));
      expect(isCurrent(status)).toBe(true);
    } finally {
      await handle.close();
    }
  });

  test("gives each caller a database of its own: a write to one is not in the next", async () => {
    const [a, b] = [await createMigratedTestDatabase(), await createMigratedTestDatabase()];
    databases.push(a, b);
    expect(a.name).not.toBe(b.name);
    const sql = postgres(a.url, { max: 1, onnotice: () => {} });
    await sql`create table only_in_a (n integer)`;
    await sql.end();
    expect(await tablesOf(a.url)).toContain("only_in_a");
    expect(await tablesOf(b.url)).not.toContain("only_in_a");
  });

  test("the template takes no connections (one would make every copy fail)", async () => {
    await createMigratedTestDatabase().then((d) => databases.push(d));
    const [row] = await admin<{ datallowconn: boolean; datistemplate: boolean }[]>`
      select datallowconn, datistemplate from pg_database where datname = ${migratedTemplateName()}`;
    expect(row).toEqual({ datallowconn: false, datistemplate: true });
  });

  test("a change to any migration's text names another template", () => {
    const edited = embedded.map((m, i) => (i === 3 ? { ...m, sql: `${m.sql}\n-- edited` } : m));
    expect(migratedTemplateName(edited)).not.toBe(migratedTemplateName());
    expect(migratedTemplateName(embedded.slice(0, -1))).not.toBe(migratedTemplateName());
    expect(migratedTemplateName([...embedded])).toBe(migratedTemplateName());
  });

  test("a new template's copy holds what its migrations made; building it drops templates of other migrations built over a day ago, not newer ones", async () => {
    const suffix = crypto.randomUUID().replaceAll("-", "").slice(0, 8);
    const stale = `msg_template_stale${suffix}`;
    const recent = `msg_template_recent${suffix}`;
    for (const [name, builtAt] of [
      [stale, new Date(Date.now() - 2 * 24 * 3600_000)],
      [recent, new Date(Date.now() - 3600_000)],
    ] as const) {
      await admin.unsafe(`create database "${name}" is_template true allow_connections false`);
      await admin.unsafe(`comment on database "${name}" is '${builtAt.toISOString()}'`);
      ownTemplates.push(name);
    }
    const list = listOfOurOwn();
    const pg = await createMigratedTestDatabase(list);
    databases.push(pg);
    const probe = list.at(-1)!.sql.match(/create table (\w+)/)![1]!;
    expect(await tablesOf(pg.url)).toContain(probe);
    const rows = await admin<{ datname: string }[]>`select datname from pg_database where datname in (${stale}, ${recent})`;
    expect(rows.map((r) => r.datname)).toEqual([recent]);
  });

  test("two processes asking for a missing template at once both get a copy; it is built once", async () => {
    const list = listOfOurOwn();
    const script = join(import.meta.dir, "database-template-child.ts");
    const children = [0, 1].map(() =>
      Bun.spawn(["bun", script], { stdin: new Blob([JSON.stringify(list)]), stdout: "pipe", stderr: "pipe" }),
    );
    const results = await Promise.all(
      children.map(async (c) => ({ code: await c.exited, out: (await new Response(c.stdout).text()).trim(), err: await new Response(c.stderr).text() })),
    );
    for (const r of results) expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: "" });
    const [a, b] = results.map((r) => JSON.parse(r.out) as { name: string; built: string });
    const names = [a!.name, b!.name];
    databases.push(...names.map((name) => ({ name, url: "", drop: () => admin.unsafe(`drop database if exists "${name}" with (force)`).then(() => {}) })));
    expect(new Set(names).size).toBe(2);
    // The template's build time (its comment) as each child saw it after its copy: one build, seen by both.
    expect(a!.built).toBe(b!.built);
    const [row] = await admin<{ n: number }[]>`
      select count(*)::int as n from pg_database where starts_with(datname, ${migratedTemplateName(list)})`;
    expect(row!.n).toBe(1);
  });

});

describe("createEmbeddedTestDatabase", () => {
  test("with { migrated: true } every embedded migration is applied, unmodified; without it none is, and copies are private", async () => {
    const [migrated, bare, other] = [
      await createEmbeddedTestDatabase({ migrated: true }),
      await createEmbeddedTestDatabase(),
      await createEmbeddedTestDatabase({ migrated: true }),
    ];
    try {
      const status = await migrationStatus(migrated.handle.db);
      expect(status.map((s) => s.tag)).toEqual(embedded.map((m) => m.tag));
      expect(isCurrent(status)).toBe(true);
      expect((await migrationStatus(bare.handle.db)).every((s) => s.state === "pending")).toBe(true);
      await migrated.handle.sql.query("CREATE TABLE only_in_this_copy (n integer)");
      const [row] = await other.handle.sql.query<{ t: string | null }>("SELECT to_regclass('only_in_this_copy')::text AS t");
      expect(row!.t).toBeNull();
    } finally {
      await Promise.all([migrated.remove(), bare.remove(), other.remove()]);
    }
  }, 60_000);
});
