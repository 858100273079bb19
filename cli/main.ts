#!/usr/bin/env bun
import { Command } from "commander";
import { VERSION } from "../src/version.ts";
import { checkCommand } from "./commands/check.ts";
import { keysCommand } from "./commands/keys.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { notBuiltCommands } from "./commands/not-built.ts";
import { selftestCommand } from "./commands/selftest.ts";
import { serveCommand } from "./commands/serve.ts";
import { webhooksCommand } from "./commands/webhooks.ts";
import { EXIT } from "./exit.ts";

/** The `messaging` executable: the API server and the admin commands in one program. */
const program = new Command("messaging")
  .description("Unified SMS/MMS/email messaging service")
  .version(VERSION, "-V, --version")
  .option("--config <path>", "config file (JSON, or TOML when it ends in .toml); env MESSAGING_CONFIG")
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.usage));

serveCommand(program);
migrateCommand(program);
checkCommand(program);
keysCommand(program);
webhooksCommand(program);
selftestCommand(program);
notBuiltCommands(program);

await program.parseAsync(process.argv);
