import { Command } from "commander";
import { VERSION } from "../src/version.ts";
import { checkCommand } from "./commands/check.ts";
import { completionCommand } from "./commands/completion.ts";
import { credsCommand } from "./commands/creds.ts";
import { eventsCommand } from "./commands/events.ts";
import { keysCommand } from "./commands/keys.ts";
import { migrateCommand } from "./commands/migrate.ts";
import { selftestCommand } from "./commands/selftest.ts";
import { serveCommand } from "./commands/serve.ts";
import { webhooksCommand } from "./commands/webhooks.ts";
import { EXIT } from "./exit.ts";

/**
 * The commander program: every command and its flags. The command modules only declare flags; each action
 * imports what it runs (`await import(…)`), which the build (`--splitting`) turns into chunks evaluated only
 * then, so `--help` loads commander and little else.
 */
export function createProgram(): Command {
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
  credsCommand(program);
  webhooksCommand(program);
  eventsCommand(program);
  selftestCommand(program);
  completionCommand(program);
  return program;
}
