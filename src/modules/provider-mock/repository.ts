import { eq, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { runtimeSettings } from "../../db/schema.ts";

const NAME = "provider.mock";

export async function readMockConfig(db: Database): Promise<unknown | undefined> {
  const [row] = await db.select({ value: runtimeSettings.value }).from(runtimeSettings).where(eq(runtimeSettings.name, NAME));
  return row?.value;
}

export async function writeMockConfig(db: Database, value: unknown): Promise<void> {
  await db
    .insert(runtimeSettings)
    .values({ name: NAME, value })
    .onConflictDoUpdate({ target: runtimeSettings.name, set: { value, updatedAt: sql`now()` } });
}
