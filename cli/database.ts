import type { Command } from "commander";
import type { ServiceConfig } from "../src/providers/config.ts";
import type { DatabaseHandle } from "../src/db/client.ts";
import { EXIT, fail } from "./exit.ts";
import { configFor } from "./options.ts";

/**
 * Runs an admin command's work on the database its flags name, then exits 0 (or through `fail`). The embedded
 * database is migrated first (it is this process's alone while the command runs, so `serve` must be stopped);
 * PostgreSQL must be current already, since several instances share it and `migrate up` is the operator's step.
 * The database code is imported here, when a command runs, not when the program is described (`--help`).
 */
export async function withMigratedDatabase(command: Command, work: (database: DatabaseHandle, config: ServiceConfig) => Promise<void>): Promise<void> {
  try {
    const config = await configFor(command);
    const [{ openDatabase }, { isCurrent, MigrationError, migrateUp, migrationStatus }] = await Promise.all([
      import("../src/db/client.ts"),
      import("../src/db/migrate.ts"),
    ]);
    const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
    try {
      if (database.kind === "embedded") await migrateUp(database.db);
      else if (!isCurrent(await migrationStatus(database.db))) {
        throw new MigrationError(`${database.describe} has pending migrations; run \`messaging migrate up\` first`);
      }
      await work(database, config);
    } finally {
      await database.close();
    }
    process.exit(EXIT.ok);
  } catch (err) {
    fail(err);
  }
}
