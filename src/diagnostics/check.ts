import { existsSync } from "node:fs";
import { sql } from "drizzle-orm";
import type { ServiceConfig } from "../providers/config.ts";
import { rootCauseMessage } from "../db/availability.ts";
import { type DatabaseHandle, openDatabase } from "../db/client.ts";
import { assertDataDirCreatable, DataDirError } from "../db/data-dir-error.ts";
import { DataDirInUseError } from "../db/data-dir-lock.ts";
import { migrationStatus } from "../db/migrate.ts";
import { DATABASE_CHECKS, type DatabaseCheck } from "./database-checks.ts";
import { redisCheck } from "./redis-check.ts";
import type { CheckResult } from "./result.ts";
import { SETTINGS_CHECKS, type SettingsCheck } from "./settings-checks.ts";

export { type CheckResult, type CheckStatus, reportPasses } from "./result.ts";

export interface CheckOptions {
  /** Recompute the conversation counters from the rows (`--repair-counters`) instead of only comparing them. */
  repairCounters?: boolean;
  /** The configuration items (default SETTINGS_CHECKS); each is independent of the others. */
  settingsChecks?: readonly SettingsCheck[];
  /** The items that read the database (default DATABASE_CHECKS), run only when it could be opened. */
  databaseChecks?: readonly DatabaseCheck[];
}

/**
 * What `messaging check` reports: everything that would make `serve` misbehave. The configuration was parsed by
 * the caller (an invalid one never gets here); then each configuration item, the shared limits' Redis, the
 * database (opened once: reachable, migration status readable) and each database item. An item that throws is
 * reported as its own error and the others still run.
 */
export async function runChecks(config: ServiceConfig, options: CheckOptions = {}): Promise<CheckResult[]> {
  const results: CheckResult[] = [{ check: "config", status: "ok", message: "configuration is valid" }];
  for (const item of options.settingsChecks ?? SETTINGS_CHECKS) results.push(...guarded(item.check, () => item.run(config)));
  results.push(...(await guardedAsync("redis", () => redisCheck(config))));
  const opened = await openForCheck(config);
  results.push(opened.result);
  if (!opened.database) return results;
  try {
    let migrations;
    try {
      migrations = await migrationStatus(opened.database.db);
    } catch (err) {
      results.push({ check: "migrations", status: "error", message: `cannot read the migration status: ${rootCauseMessage(err)}` });
      return results;
    }
    const context = { config, database: opened.database, migrations, repairCounters: options.repairCounters ?? false };
    for (const item of options.databaseChecks ?? DATABASE_CHECKS) {
      results.push(...(await guardedAsync(item.check, () => item.run(context))));
    }
    return results;
  } finally {
    await opened.database.close();
  }
}

/**
 * The database, opened as `serve` would open it, with the line that says whether it could be. The embedded one is
 * opened only when its directory exists (checking must not run initdb, which takes seconds and leaves a directory
 * behind), and one a running `serve` holds is that serve's to check, through /readyz.
 */
async function openForCheck(config: ServiceConfig): Promise<{ result: CheckResult; database?: DatabaseHandle }> {
  if (!config.databaseUrl && !existsSync(config.dataDir)) {
    try {
      assertDataDirCreatable(config.dataDir);
    } catch (err) {
      if (err instanceof DataDirError) return { result: { check: "database", status: "error", message: err.message } };
      throw err;
    }
    return { result: { check: "database", status: "warn", message: `no embedded database in ${config.dataDir} yet; \`messaging serve\` creates and migrates it` } };
  }
  let database: DatabaseHandle | undefined;
  try {
    database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
    await database.db.execute(sql`select 1`);
    return { result: { check: "database", status: "ok", message: `${database.describe} answers` }, database };
  } catch (err) {
    await database?.close().catch(() => {});
    if (err instanceof DataDirError) return { result: { check: "database", status: "error", message: err.message } };
    if (err instanceof DataDirInUseError) {
      return { result: { check: "database", status: "warn", message: `${err.message}; check the running service's /readyz instead` } };
    }
    return { result: { check: "database", status: "error", message: `cannot reach the database: ${rootCauseMessage(err)}` } };
  }
}

const crashed = (check: string, err: unknown): CheckResult[] => [
  { check, status: "error", message: `the check itself failed: ${(err as Error)?.message ?? String(err)}` },
];

function guarded(check: string, run: () => CheckResult[]): CheckResult[] {
  try {
    return run();
  } catch (err) {
    return crashed(check, err);
  }
}

async function guardedAsync(check: string, run: () => Promise<CheckResult[]>): Promise<CheckResult[]> {
  try {
    return await run();
  } catch (err) {
    return crashed(check, err);
  }
}
