import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import { migrations as embedded } from "../../drizzle/manifest.ts";
import { OperatorError } from "../operator-error.ts";
import { type Database, queryRows } from "./client.ts";

/** Serializes migration runs of every machine sharing the database (any constant; this one spells "msgmigr"). */
const MIGRATION_LOCK = 0x6d7367_6d696772n;
const TABLE = "messaging_migrations";

export interface Migration {
  tag: string;
  sql: string;
}

export type MigrationState = "applied" | "pending" | "modified" | "unknown";

export interface MigrationStatus {
  tag: string;
  state: MigrationState;
  appliedAt: Date | null;
}

/** A migration that was applied and then edited, or another reason the runner refuses to go on. */
export class MigrationError extends OperatorError {
  override name = "MigrationError";
}

export const checksum = (text: string) => createHash("sha256").update(text).digest("hex");

/** drizzle-kit separates statements with this marker; each is executed on its own. */
const statements = (text: string) =>
  text
    .split("--> statement-breakpoint")
    .map((s) => s.trim())
    .filter(Boolean);

async function appliedRows(db: Pick<Database, "execute">) {
  const exists = await queryRows<{ t: string | null }>(db, sql`select to_regclass(${TABLE})::text as t`);
  if (!exists[0]?.t) return [];
  return queryRows<{ tag: string; checksum: string; applied_at: string | Date }>(
    db,
    sql.raw(`select tag, checksum, applied_at from ${TABLE} order by tag`),
  );
}

/** Applied, pending, edited (`modified`) and unknown-to-this-binary migrations, in order. */
export async function migrationStatus(db: Database, list: readonly Migration[] = embedded): Promise<MigrationStatus[]> {
  const applied = new Map((await appliedRows(db)).map((r) => [r.tag, r]));
  const out: MigrationStatus[] = list.map((m) => {
    const row = applied.get(m.tag);
    applied.delete(m.tag);
    if (!row) return { tag: m.tag, state: "pending", appliedAt: null };
    return {
      tag: m.tag,
      state: row.checksum === checksum(m.sql) ? "applied" : "modified",
      appliedAt: new Date(row.applied_at),
    };
  });
  for (const row of applied.values()) out.push({ tag: row.tag, state: "unknown", appliedAt: new Date(row.applied_at) });
  return out;
}

/**
 * Applies pending migrations, each in its own transaction under a transaction-level advisory lock, so
 * several machines may run it at once: the second waits, then finds the migration applied and skips it.
 * Refuses to run at all when an applied migration was edited. Returns the tags it applied.
 */
export async function migrateUp(db: Database, list: readonly Migration[] = embedded): Promise<string[]> {
  assertUnmodified(await migrationStatus(db, list));
  const applied: string[] = [];
  for (const m of list) {
    const sum = checksum(m.sql);
    const didApply = await db.transaction(async (tx) => {
      await tx.execute(sql.raw(`select pg_advisory_xact_lock(${MIGRATION_LOCK})`));
      await tx.execute(
        sql.raw(
          `create table if not exists ${TABLE} (tag text primary key, checksum text not null, applied_at timestamptz not null default now())`,
        ),
      );
      const [row] = await queryRows<{ checksum: string }>(tx, sql`select checksum from messaging_migrations where tag = ${m.tag}`);
      if (row) {
        if (row.checksum !== sum) throw editedError(m.tag);
        return false;
      }
      for (const statement of statements(m.sql)) await tx.execute(sql.raw(statement));
      await tx.execute(sql`insert into messaging_migrations (tag, checksum) values (${m.tag}, ${sum})`);
      return true;
    });
    if (didApply) applied.push(m.tag);
  }
  return applied;
}

/** Throws when any applied migration differs from the embedded one. */
export function assertUnmodified(status: MigrationStatus[]): void {
  const edited = status.find((s) => s.state === "modified");
  if (edited) throw editedError(edited.tag);
}

const editedError = (tag: string) =>
  new MigrationError(
    `migration ${tag} was applied to this database and has since been edited; restore the original file or write a new migration instead`,
  );

/** True when every embedded migration is applied unmodified. */
export const isCurrent = (status: MigrationStatus[]) => status.every((s) => s.state === "applied" || s.state === "unknown");
