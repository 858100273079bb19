/**
 * Databases for tests: a throw-away PostgreSQL database on the server named by `TEST_DATABASE_URL`,
 * or an embedded PGlite database in a temporary directory. Each test file makes its own and removes it.
 *
 *   const pg = await createTestDatabase();          // msg_test_<random> on TEST_DATABASE_URL
 *   const handle = openPostgres(pg.url, 2);          // … use it …
 *   await handle.close(); await pg.drop();
 *
 *   await copyEmbeddedTemplate(join(dir, "messaging-data"));   // a fresh, unmigrated data directory for a binary
 */
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { processEnv } from "../../src/config/index.ts";
import { type DatabaseHandle, openDatabase } from "../../src/db/client.ts";
import { closeEmbeddedDatabase, openEmbeddedDatabase } from "../../src/db/embedded.ts";

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

/** Creates a uniquely named, empty PostgreSQL database (`msg_test_<random>`). */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `msg_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  await onServer(`create database "${name}"`);
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  let dropped: Promise<void> | undefined;
  return {
    url: url.toString(),
    name,
    drop: () => (dropped ??= onServer(`drop database if exists "${name}" with (force)`)),
  };
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

/** Fills `dataDir` (which must not exist yet) with a copy of the run's initdb'ed, unmigrated template. */
export async function copyEmbeddedTemplate(dataDir: string): Promise<void> {
  cpSync(await embeddedTemplate(), dataDir, { recursive: true, errorOnExist: true, force: false });
}

/**
 * Opens an embedded PGlite database in a new temporary directory (not migrated), copied from the run's template
 * instead of running initdb. Opening PGlite still costs a second or so, so share one per test file.
 */
export async function createEmbeddedTestDatabase(): Promise<TestEmbeddedDatabase> {
  const root = await mkdtemp(join(tmpdir(), "msg-test-embedded-"));
  const dataDir = join(root, "data");
  await copyEmbeddedTemplate(dataDir);
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
