import type { Command } from "commander";
import { EXIT, fail } from "../exit.ts";
import { configFor, withDatabaseFlags } from "../options.ts";

/** `messaging migrate [up|status]`: apply or list the migrations embedded in this binary. */
export function migrateCommand(program: Command): void {
  withDatabaseFlags(
    program
      .command("migrate")
      .description("apply (up, the default) or list (status) the embedded migrations; safe to run from several machines at once")
      .argument("[action]", "up | status", "up"),
  )
    .option("--json", "machine-readable output")
    .action(async (action: string, options: { json?: boolean }, command: Command) => {
      if (action !== "up" && action !== "status") {
        process.stderr.write(`messaging: unknown migrate action "${action}"; use up or status\n`);
        process.exit(EXIT.usage);
      }
      try {
        const config = await configFor(command);
        const [{ openDatabase }, { migrateUp, migrationStatus }] = await Promise.all([
          import("../../src/db/client.ts"),
          import("../../src/db/migrate.ts"),
        ]);
        const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
        try {
          if (action === "up") {
            const applied = await migrateUp(database.db);
            if (options.json) console.log(JSON.stringify({ applied }));
            else if (applied.length === 0) console.log(`${database.describe}: up to date, nothing to apply`);
            else console.log(`${database.describe}: applied ${applied.join(", ")}`);
          } else {
            const status = await migrationStatus(database.db);
            if (options.json) console.log(JSON.stringify({ database: database.describe, migrations: status }));
            else {
              console.log(database.describe);
              for (const s of status) console.log(`  ${s.state.padEnd(8)} ${s.tag}${s.appliedAt ? `  (applied ${s.appliedAt.toISOString()})` : ""}`);
            }
          }
        } finally {
          await database.close();
        }
        process.exit(EXIT.ok);
      } catch (err) {
        fail(err);
      }
    });
}
