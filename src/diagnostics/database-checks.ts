import type { ServiceConfig } from "../providers/config.ts";
import { rootCauseMessage } from "../db/availability.ts";
import type { DatabaseHandle } from "../db/client.ts";
import { isCurrent, type MigrationStatus } from "../db/migrate.ts";
import type { SqlRunner } from "../db/runner.ts";
import { type CounterDrift, counterDrift, isExact, repairCounters } from "./counters.ts";
import { storedCredentialChecks } from "./credentials.ts";
import { eventEndpointsCheck } from "./events.ts";
import type { CheckResult, CheckStatus } from "./result.ts";

/** What an item that reads the database is given: the database opened once for the whole report. */
export interface DatabaseCheckContext {
  config: ServiceConfig;
  database: DatabaseHandle;
  /** The migrations as this binary sees them, read once (an error reading them is reported before any item runs). */
  migrations: MigrationStatus[];
  /** `--repair-counters`: recompute the counters instead of only comparing them. */
  repairCounters: boolean;
}

/** One item of the report that reads the database; `check` names it should it throw. */
export interface DatabaseCheck {
  check: string;
  run: (context: DatabaseCheckContext) => Promise<CheckResult[]>;
}

const tags = (status: MigrationStatus[], state: MigrationStatus["state"]) => status.filter((s) => s.state === state).map((s) => s.tag);

/**
 * Migrations current and unedited: an applied migration whose checksum changed is an error (serve refuses it),
 * as is a pending one on PostgreSQL (serve refuses to start without `--migrate`); the embedded database is
 * migrated by `serve` itself, so there a pending one is a warning. One applied by a newer binary is a warning:
 * this binary may not know what the schema now holds.
 */
export async function migrationsCheck({ database, migrations }: DatabaseCheckContext): Promise<CheckResult[]> {
  const modified = tags(migrations, "modified");
  if (modified.length > 0) {
    return [{ check: "migrations", status: "error", message: `applied migrations were edited since (checksum differs): ${modified.join(", ")}` }];
  }
  const out: CheckResult[] = [];
  const pending = tags(migrations, "pending");
  if (pending.length > 0) {
    const status: CheckStatus = database.kind === "embedded" ? "warn" : "error";
    out.push({ check: "migrations", status, message: `${pending.length} pending: ${pending.join(", ")}; run \`messaging migrate up\`` });
  } else {
    out.push({ check: "migrations", status: "ok", message: `all ${migrations.length} migration(s) applied, none edited` });
  }
  const unknown = tags(migrations, "unknown");
  if (unknown.length > 0) {
    out.push({ check: "migrations", status: "warn", message: `applied by a newer binary: ${unknown.join(", ")}; upgrade this one` });
  }
  return out;
}

const describeDrift = (d: CounterDrift) =>
  `the counters say ${d.counted} conversation(s), the table holds ${d.conversations}; ${d.messageCountsOff} message_count(s) off`;

/**
 * The counters behind `meta.total` and `message_count` against the rows (a full count: about 0.2 s per
 * million conversations). Drift is an error, because the API would answer wrong totals; `--repair-counters`
 * recomputes them and says what it changed. Read only once the schema is current (the tables may not exist).
 */
export async function countersCheck({ database, migrations, repairCounters: repair }: DatabaseCheckContext): Promise<CheckResult[]> {
  if (!isCurrent(migrations)) return [];
  return [await counters(database.sql, repair)];
}

async function counters(sql: SqlRunner, repair: boolean): Promise<CheckResult> {
  try {
    if (repair) {
      const { before, after } = await repairCounters(sql);
      if (!isExact(after)) return { check: "counters", status: "error", message: `still off after the repair: ${describeDrift(after)}` };
      if (isExact(before)) return { check: "counters", status: "ok", message: `exact (${after.conversations} conversations); nothing to repair` };
      return { check: "counters", status: "ok", message: `repaired: ${describeDrift(before)}; now exact (${after.conversations} conversations)` };
    }
    const drift = await counterDrift(sql);
    if (isExact(drift)) return { check: "counters", status: "ok", message: `exact (${drift.conversations} conversations)` };
    return { check: "counters", status: "error", message: `${describeDrift(drift)}; run \`messaging check --repair-counters\`` };
  } catch (err) {
    return { check: "counters", status: "error", message: `cannot read the counters: ${rootCauseMessage(err)}` };
  }
}

/** The database items of `messaging check`, in the order they are reported. */
export const DATABASE_CHECKS: readonly DatabaseCheck[] = [
  { check: "migrations", run: migrationsCheck },
  { check: "counters", run: countersCheck },
  { check: "credentials", run: storedCredentialChecks },
  { check: "event-endpoints", run: eventEndpointsCheck },
];
