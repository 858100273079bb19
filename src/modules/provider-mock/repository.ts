import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { runtimeSettings } from "../../db/schema.ts";

const NAME = "provider.mock";

/**
 * The stored config as JSON text, or undefined when none was ever stored. Raw, prepared SQL: the delivery
 * workers read it before every claim, thousands of times a minute under load.
 */
export async function readMockConfigText(sql: SqlRunner): Promise<string | undefined> {
  const [row] = await sql.query<{ value: string }>("SELECT value::text AS value FROM runtime_settings WHERE name = $1", [NAME]);
  return row?.value;
}

export async function writeMockConfig(db: Database, value: unknown): Promise<void> {
  await db
    .insert(runtimeSettings)
    .values({ name: NAME, value })
    .onConflictDoUpdate({ target: runtimeSettings.name, set: { value, updatedAt: sql`now()` } });
}
