import type { Command } from "commander";
import { ConfigError } from "../../src/config/index.ts";
import { runChecks } from "../../src/diagnostics/check.ts";
import { EXIT, fail } from "../exit.ts";
import { configFor, withDatabaseFlags } from "../options.ts";

const MARK = { ok: "ok  ", warn: "WARN", error: "FAIL" } as const;

/** `messaging check`: validate the configuration and the environment; exit 0 when nothing is in error. */
export function checkCommand(program: Command): void {
  withDatabaseFlags(
    program.command("check").description("validate configuration and environment (database, migrations, counters, insecure settings)"),
  )
    .option("--json", "machine-readable output")
    .option("--repair-counters", "recompute the conversation total and every message_count from the rows (locks writes briefly)")
    .action(async (options: { json?: boolean; repairCounters?: boolean }, command: Command) => {
      try {
        let config;
        try {
          config = await configFor(command);
        } catch (err) {
          if (!(err instanceof ConfigError) || !options.json) throw err;
          console.log(JSON.stringify({ ok: false, checks: [{ name: "config", level: "error", message: err.message }] }));
          process.exit(EXIT.usage);
        }
        const report = await runChecks(config, { repairCounters: options.repairCounters });
        if (options.json) console.log(JSON.stringify(report, null, 2));
        else {
          for (const c of report.checks) console.log(`${MARK[c.level]}  ${c.name}: ${c.message}`);
          console.log(report.ok ? "check passed" : "check failed");
        }
        process.exit(report.ok ? EXIT.ok : EXIT.failed);
      } catch (err) {
        fail(err);
      }
    });
}
