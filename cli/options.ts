import type { Command } from "commander";
import type { ServiceConfig } from "../src/providers/config.ts";
import type { SettingSpec } from "../src/config/settings.ts";

/** Commander's attribute name for a flag: `--data-dir` → `dataDir`. */
const optionName = (flag: string) => flag.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Flags shared by the commands that touch the database; their values override env and the config file. */
export function withDatabaseFlags(command: Command): Command {
  return command
    .option("--database-url <url>", "PostgreSQL URL (env DATABASE_URL); without it the embedded database is used")
    .option("--data-dir <dir>", "directory of the embedded database (env MESSAGING_DATA_DIR)");
}

/**
 * The configuration for a command: its flags > environment > `--config` file > defaults. The settings
 * schema (zod and every setting's parser) is loaded here, when a command runs, not when the CLI starts:
 * `--help` and `--version` never need it.
 */
export async function configFor(command: Command): Promise<ServiceConfig> {
  const { loadConfig, processEnv, SETTINGS } = await import("../src/config/index.ts");
  const { withProviders } = await import("../src/providers/config.ts");
  const all = command.optsWithGlobals() as Record<string, unknown>;
  const flags: Record<string, unknown> = {};
  for (const s of SETTINGS as readonly SettingSpec[]) {
    const value = s.flag ? all[optionName(s.flag)] : undefined;
    if (value !== undefined) flags[s.key] = value;
  }
  const configFile = all.config;
  return withProviders(
    loadConfig({
      flags,
      env: processEnv(),
      configFile: typeof configFile === "string" ? configFile : undefined,
    }),
  );
}
