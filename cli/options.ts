import type { Command } from "commander";
import { type Config, loadConfig, processEnv } from "../src/config/index.ts";

/** Flags shared by the commands that touch the database; their values override env and the config file. */
export function withDatabaseFlags(command: Command): Command {
  return command
    .option("--database-url <url>", "PostgreSQL URL (env DATABASE_URL); without it the embedded database is used")
    .option("--data-dir <dir>", "directory of the embedded database (env MESSAGING_DATA_DIR)");
}

/** The configuration for a command: its flags > environment > `--config` file > defaults. */
export function configFor(command: Command): Config {
  const all = command.optsWithGlobals() as Record<string, unknown>;
  const { config: configFile, json: _json, ...flags } = all;
  return loadConfig({
    flags: Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)),
    env: processEnv(),
    configFile: typeof configFile === "string" ? configFile : undefined,
  });
}
