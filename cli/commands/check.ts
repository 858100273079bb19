import type { Command } from "commander";
import type { CheckResult } from "../../src/diagnostics/check.ts";
import { EXIT, fail } from "../exit.ts";
import { configFor, withDatabaseFlags } from "../options.ts";

const MARK = { ok: "✓", warn: "⚠", error: "✗" } as const;

/**
 * `messaging check`: everything that would make `serve` misbehave, one line each (✓ ⚠ ✗) or a JSON list of
 * `{check, status, message}`. Exit 0 when nothing is wrong, 1 on an error (or, with `--strict`, a warning),
 * 2 when the configuration itself is invalid (nothing else can be checked then).
 */
export function checkCommand(program: Command): void {
  withDatabaseFlags(
    program
      .command("check")
      .description("report what would make serve misbehave: configuration, database, migrations, counters, providers, insecure settings"),
  )
    .option("--json", "machine-readable output: a JSON list of {check, status: ok|warn|error, message}")
    .option("--strict", "fail (exit 1) on warnings too")
    .option("--repair-counters", "recompute the conversation total and every message_count from the rows (locks writes briefly)")
    .action(async (options: { json?: boolean; strict?: boolean; repairCounters?: boolean }, command: Command) => {
      try {
        let config;
        try {
          config = await configFor(command);
        } catch (err) {
          const { ConfigError } = await import("../../src/config/index.ts");
          if (!(err instanceof ConfigError) || !options.json) throw err;
          print([{ check: "config", status: "error", message: err.message }], true);
          process.exit(EXIT.usage);
        }
        const { reportPasses, runChecks } = await import("../../src/diagnostics/check.ts");
        const results = await runChecks(config, { repairCounters: options.repairCounters });
        const passed = reportPasses(results, options.strict ?? false);
        print(results, options.json ?? false);
        if (!options.json) console.log(summary(results, passed, options.strict ?? false));
        process.exit(passed ? EXIT.ok : EXIT.failed);
      } catch (err) {
        fail(err);
      }
    });
}

function print(results: CheckResult[], json: boolean): void {
  if (json) console.log(JSON.stringify(results, null, 2));
  else for (const r of results) console.log(`${MARK[r.status]} ${r.check}: ${r.message}`);
}

function summary(results: CheckResult[], passed: boolean, strict: boolean): string {
  const count = (status: CheckResult["status"]) => results.filter((r) => r.status === status).length;
  const counts = `${count("error")} error(s), ${count("warn")} warning(s)`;
  if (!passed) return `check failed: ${counts}${strict && count("error") === 0 ? " (--strict)" : ""}`;
  return `check passed: ${counts}`;
}
