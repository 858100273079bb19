/**
 * Databases for tests: a throw-away PostgreSQL database on the server named by `TEST_DATABASE_URL`,
 * or an embedded PGlite database in a temporary directory. Each test file makes its own and removes it.
 *
 *   const pg = await createTestDatabase();          // msg_test_<random> on TEST_DATABASE_URL
 *   const handle = openPostgres(pg.url, 2);          // … use it …
 *   await handle.close(); await pg.drop();
 *
 *   const migrated = await createMigratedTestDatabase();  // msg_test_<random> with every embedded migration applied
 *   await copyEmbeddedTemplate(join(dir, "messaging-data"));   // a fresh, unmigrated data directory for a binary
 *   const e = await createEmbeddedTestDatabase({ migrated: true });   // PGlite, every migration applied
 */
import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { migrations as embeddedMigrations } from "../../drizzle/manifest.ts";
import { processEnv } from "../../src/config/index.ts";
import { type DatabaseHandle, openDatabase, openPostgres } from "../../src/db/client.ts";
import { closeEmbeddedDatabase, openEmbeddedDatabase } from "../../src/db/embedded.ts";
import { type Migration, migrateUp } from "../../src/db/migrate.ts";

/** The PostgreSQL server tests use; its own database is only used to create and drop the test databases. */
export const TEST_DATABASE_URL = processEnv().TEST_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  /** URL of the new, empty database (same server and credentials as TEST_DATABASE_URL). */
  url: string;
  name: string;
  /** Drops the database, disconnecting whoever is still connected. Safe to call twice. */
  drop(): Promise<void>;
}

/** Runs one statement on the server's maintenance database over a short-lived connection. */
async function onServer(statement: string): Promise<void> {
  const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await admin.unsafe(statement);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** The URL of database `name` on the TEST_DATABASE_URL server. */
function databaseUrl(name: string): string {
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Creates a uniquely named, empty PostgreSQL database (`msg_test_<random>`). */
export async function createTestDatabase(): Promise<TestDatabase> {
  return createDatabaseFrom(undefined);
}

async function createDatabaseFrom(templateName: string | undefined): Promise<TestDatabase> {
  const name = `msg_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  await onServer(`create database "${name}"${templateName ? ` template "${templateName}"` : ""}`);
  let dropped: Promise<void> | undefined;
  return {
    url: databaseUrl(name),
    name,
    drop: () => (dropped ??= onServer(`drop database if exists "${name}" with (force)`)),
  };
}

/**
 * A new PostgreSQL database with every embedded migration applied, as `migrateUp` leaves one: a copy of the
 * server's migrated template database (below). A copy costs a few tens of milliseconds where running the
 * migrations costs a few hundred, and the suite builds about a hundred migrated databases. Tests of the
 * migrations themselves start from `createTestDatabase()` and run them.
 */
export async function createMigratedTestDatabase(list: readonly Migration[] = embeddedMigrations): Promise<TestDatabase> {
  const name = migratedTemplateName(list);
  try {
    return await createDatabaseFrom(await migratedTemplate(name, list));
  } catch (err) {
    // Another run dropped this template as stale between our look and our copy (see pruneStaleTemplates): build
    // it again, once.
    if ((err as { code?: string }).code !== "3D000") throw err;
    templates.delete(name);
    return createDatabaseFrom(await migratedTemplate(name, list));
  }
}

/** Names the template by what it holds: a change to any migration (or to how it is built) names a new one. */
export function migratedTemplateName(list: readonly Migration[] = embeddedMigrations): string {
  const hash = createHash("sha256").update(`template v${TEMPLATE_FORMAT}\n`);
  for (const m of list) hash.update(`${m.tag}\n${m.sql}\n`);
  return `${MIGRATED_TEMPLATE_PREFIX}${hash.digest("hex").slice(0, 16)}`;
}

/** Bump when the way a template is built changes, so servers holding one built the old way build a new one. */
const TEMPLATE_FORMAT = 1;
const MIGRATED_TEMPLATE_PREFIX = "msg_template_";
/** Serializes building templates between test processes sharing the server (any constant; this spells "msgtmpl"). */
const TEMPLATE_LOCK = 0x6d7367_746d706cn;
/** A template of other migrations (another branch's, or older) is dropped once it is this old. */
const STALE_TEMPLATE_MS = 24 * 60 * 60 * 1000;

/** This process's templates by name, once found or built. */
const templates = new Map<string, Promise<string>>();

/**
 * The server's template for the current migrations, built when missing. It outlives the run: the next run (and
 * every other test process on the server, e.g. other worktrees or `bun test --parallel` workers) copies the same
 * one while the migrations are unchanged. Built under an advisory lock, under a temporary name renamed once
 * complete, and closed to connections (a connection to a template makes every copy of it fail), so a process
 * that finds the name finds a finished template.
 */
function migratedTemplate(name: string, list: readonly Migration[]): Promise<string> {
  const known = templates.get(name);
  if (known) return known;
  const found = (async () => {
    const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {}, connect_timeout: 5 });
    try {
      if (await databaseExists(admin, name)) return name;
      await admin`select pg_advisory_lock(${TEMPLATE_LOCK.toString()}::bigint)`;
      try {
        if (await databaseExists(admin, name)) return name;
        await buildTemplate(admin, name, list);
        await pruneStaleTemplates(admin, name);
        return name;
      } finally {
        await admin`select pg_advisory_unlock(${TEMPLATE_LOCK.toString()}::bigint)`;
      }
    } finally {
      await admin.end({ timeout: 5 });
    }
  })();
  templates.set(name, found);
  // A failed build is not cached: the next caller tries again and sees its own error.
  found.catch(() => templates.delete(name));
  return found;
}

async function databaseExists(admin: postgres.Sql, name: string): Promise<boolean> {
  return (await admin`select 1 from pg_database where datname = ${name}`).length > 0;
}

/** Runs the migrations on a new database and turns it into template `name`. Called under the lock. */
async function buildTemplate(admin: postgres.Sql, name: string, list: readonly Migration[]): Promise<void> {
  const building = `${name}_building`;
  // Left by a process that died while building (the lock it held went with its connection).
  await admin.unsafe(`drop database if exists "${building}" with (force)`);
  await admin.unsafe(`create database "${building}"`);
  const handle = openPostgres(databaseUrl(building), 1);
  try {
    await migrateUp(handle.db, list);
  } finally {
    await handle.close();
  }
  await admin.unsafe(`alter database "${building}" with is_template true allow_connections false`);
  await admin.unsafe(`comment on database "${building}" is '${new Date().toISOString()}'`);
  // Last: from here on other processes find it, complete.
  await admin.unsafe(`alter database "${building}" rename to "${name}"`);
}

/**
 * Drops templates of other migrations built more than a day ago, so the server does not collect them forever, and
 * half-built ones (called under the lock, so no one is building any).
 */
async function pruneStaleTemplates(admin: postgres.Sql, keep: string): Promise<void> {
  const rows = await admin<{ datname: string; built: string | null }[]>`
    select datname, shobj_description(oid, 'pg_database') as built from pg_database
     where starts_with(datname, ${MIGRATED_TEMPLATE_PREFIX}) and datname <> ${keep}`;
  for (const { datname, built } of rows) {
    const builtAt = Date.parse(built ?? "");
    const halfBuilt = datname.endsWith("_building");
    if (!halfBuilt && Number.isFinite(builtAt) && Date.now() - builtAt < STALE_TEMPLATE_MS) continue;
    await admin.unsafe(`alter database "${datname}" with is_template false`);
    await admin.unsafe(`drop database if exists "${datname}" with (force)`);
  }
}

export interface TestEmbeddedDatabase {
  handle: DatabaseHandle;
  dataDir: string;
  /** Closes the database (if still open) and deletes its directory. */
  remove(): Promise<void>;
}

const TEMPLATE_PREFIX = "msg-test-template-";
let template: Promise<string> | undefined;

/**
 * A PGlite data directory as initdb leaves it (not migrated), made once per `bun test` run and closed cleanly so
 * its files are consistent to copy. initdb costs several seconds a time and the suite opened about one embedded
 * database per file; a copy of this one opens in a fraction of that. `bun test` runs every file in one process,
 * so this module (and the promise) is shared by all of them. The template is opened below the data-directory
 * lock, so it holds no lock file of ours.
 */
function embeddedTemplate(): Promise<string> {
  template ??= (async () => {
    removeAbandonedTemplates();
    const root = mkdtempSync(join(tmpdir(), `${TEMPLATE_PREFIX}${process.pid}-`));
    process.once("exit", () => rmSync(root, { recursive: true, force: true }));
    const dataDir = join(root, "data");
    await closeEmbeddedDatabase(await openEmbeddedDatabase(dataDir));
    return dataDir;
  })();
  // A failed initdb is not cached: the next caller tries again and sees its own error.
  template.catch(() => (template = undefined));
  return template;
}

/**
 * `bun test` emits no `exit` event, so a run cannot remove its own template; the next run removes those whose
 * process (named in the directory) is gone.
 */
function removeAbandonedTemplates(): void {
  for (const name of readdirSync(tmpdir())) {
    const pid = Number(new RegExp(`^${TEMPLATE_PREFIX}(\\d+)-`).exec(name)?.[1]);
    if (pid && pid !== process.pid && !isAlive(pid)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

let migratedEmbedded: Promise<string> | undefined;

/**
 * The run's initdb'ed template with every embedded migration applied, made once per process from the first and
 * closed cleanly. Migrating PGlite costs a quarter of a second or more, and the suite builds a few dozen
 * migrated embedded apps.
 */
function migratedEmbeddedTemplate(): Promise<string> {
  migratedEmbedded ??= (async () => {
    const unmigrated = await embeddedTemplate();
    const root = mkdtempSync(join(tmpdir(), `${TEMPLATE_PREFIX}${process.pid}-migrated-`));
    process.once("exit", () => rmSync(root, { recursive: true, force: true }));
    const dataDir = join(root, "data");
    cpSync(unmigrated, dataDir, { recursive: true, errorOnExist: true, force: false });
    const handle = await openDatabase({ dataDir, poolSize: 1 });
    try {
      await migrateUp(handle.db);
    } finally {
      await handle.close();
    }
    return dataDir;
  })();
  migratedEmbedded.catch(() => (migratedEmbedded = undefined));
  return migratedEmbedded;
}

/**
 * Builds the run's migrated embedded template now, if no file has yet. initdb and the migrations run in this
 * process and block its event loop for seconds: a file whose tests run side by side (test.concurrent) and time
 * things calls this in its beforeAll, so the build does not land inside another test's bound.
 */
export async function prepareEmbeddedTemplates(): Promise<void> {
  await migratedEmbeddedTemplate();
}

/**
 * Fills `dataDir` (which must not exist yet) with a copy of the run's initdb'ed template: unmigrated, or with
 * `{ migrated: true }` every embedded migration applied (a binary started on it has nothing to migrate).
 */
export async function copyEmbeddedTemplate(dataDir: string, options: { migrated?: boolean } = {}): Promise<void> {
  const template = options.migrated ? await migratedEmbeddedTemplate() : await embeddedTemplate();
  cpSync(template, dataDir, { recursive: true, errorOnExist: true, force: false });
}

/**
 * Opens an embedded PGlite database in a new temporary directory, copied from the run's template instead of
 * running initdb: not migrated, or with `{ migrated: true }` every embedded migration applied. Opening PGlite
 * still costs a second or so, so share one per test file.
 */
export async function createEmbeddedTestDatabase(options: { migrated?: boolean } = {}): Promise<TestEmbeddedDatabase> {
  const root = await mkdtemp(join(tmpdir(), "msg-test-embedded-"));
  const dataDir = join(root, "data");
  await copyEmbeddedTemplate(dataDir, options);
  const handle = await openDatabase({ dataDir, poolSize: 1 });
  return {
    handle,
    dataDir,
    remove: async () => {
      await handle.close().catch(() => {});
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A migrated, empty database of either kind `serve` runs on (copies of the templates), and how to remove it. */
export async function openMigratedDatabase(
  kind: "postgres" | "embedded",
  poolSize = 2,
): Promise<{ database: DatabaseHandle; close(): Promise<void> }> {
  if (kind === "embedded") {
    const embedded = await createEmbeddedTestDatabase({ migrated: true });
    return { database: embedded.handle, close: embedded.remove };
  }
  const pg = await createMigratedTestDatabase();
  const database = openPostgres(pg.url, poolSize);
  return {
    database,
    close: async () => {
      await database.close();
      await pg.drop();
    },
  };
}
