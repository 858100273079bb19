// The compiled binary's first start on an empty data directory unpacks the initdb template `bun run build` embedded
// (packaging/pgdata-template.ts) instead of running initdb, and what it ends with is the database initdb and the
// migrations make: the same catalog, the same schema, every migration applied.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DatabaseHandle, openDatabase } from "../../src/db/client.ts";
import { ensureBinary, killAll, type ServeProcess, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate } from "../helpers/database.ts";

const scratch: string[] = [];
const running: ServeProcess[] = [];
const handles: DatabaseHandle[] = [];

beforeAll(ensureBinary, 180_000);
afterAll(async () => {
  killAll(running);
  for (const h of handles) await h.close().catch(() => {});
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

function emptyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "msg-test-pgdata-template-"));
  scratch.push(dir);
  return dir;
}

/** The cluster's system identifier (the first 8 bytes of global/pg_control): initdb draws a new one every run. */
const systemIdentifier = (dataDir: string) => readFileSync(join(dataDir, "global", "pg_control")).readBigUInt64LE(0);

/** A first start of the binary in an empty directory, stopped once ready; returns its data directory. */
async function firstStart(): Promise<string> {
  const dir = emptyDir();
  const s = await startServe({ cwd: dir });
  running.push(s);
  expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
  expect(await s.stop()).toBe(0);
  return join(dir, "messaging-data");
}

/** What a database is made of: its catalog, the schema the migrations made, and the settings initdb chose. */
async function shape(dataDir: string) {
  const handle = await openDatabase({ dataDir, poolSize: 1 });
  handles.push(handle);
  const rows = (text: string) => handle.sql.query<Record<string, unknown>>(text);
  const shaped = {
    catalog: await rows("SELECT relname, relkind FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace ORDER BY relname"),
    databases: await rows("SELECT datname, encoding, datcollate, datctype FROM pg_database ORDER BY datname"),
    settings: await rows(
      "SELECT name, setting FROM pg_settings WHERE name IN ('server_encoding', 'lc_collate', 'lc_ctype', 'TimeZone', 'DateStyle', 'default_text_search_config', 'data_checksums', 'block_size', 'wal_segment_size') ORDER BY name",
    ),
    columns: await rows(
      "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    ),
    indexes: await rows("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"),
    constraints: await rows("SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY conname, def"),
    triggers: await rows("SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname, def"),
    functions: await rows("SELECT proname, pg_get_functiondef(oid) AS def FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY proname, def"),
    migrations: await rows("SELECT tag, checksum FROM messaging_migrations ORDER BY tag"),
  };
  await handle.close();
  return shaped;
}

describe("the binary's first start on an empty data directory", () => {
  let fromTemplate: string[];
  beforeAll(async () => {
    fromTemplate = await Promise.all([firstStart(), firstStart()]);
  }, 120_000);

  test("unpacks the embedded initdb template: every data directory it creates has the template's cluster, not a new initdb's", async () => {
    const [a, b] = fromTemplate.map(systemIdentifier);
    expect(a).toBe(b!);
    // initdb (what `bun test` runs, from source) draws a new identifier each time.
    const initdb = join(emptyDir(), "data");
    await copyEmbeddedTemplate(initdb);
    expect(systemIdentifier(initdb)).not.toBe(a!);
  });

  test("ends with the database initdb and the migrations make: the same catalog, schema, settings and migrations", async () => {
    const migrated = join(emptyDir(), "data");
    await copyEmbeddedTemplate(migrated, { migrated: true });
    const expected = await shape(migrated);
    expect(expected.migrations.length).toBeGreaterThan(20);
    expect(expected.columns.length).toBeGreaterThan(50);
    expect(await shape(fromTemplate[0]!)).toEqual(expected);
  }, 60_000);
});
