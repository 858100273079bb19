import type { Command } from "commander";
import { EXIT } from "../exit.ts";

/**
 * Commands of the contract whose issue has not landed yet. They are listed so `--help` shows the whole
 * tool, and they say so and exit 2 instead of pretending to succeed.
 */
export function notBuiltCommands(program: Command): void {
  const pending: [string, string][] = [
    ["creds", "manage provider credentials and the master key (rotate | set | list)"],
  ];
  for (const [name, description] of pending) {
    program
      .command(name)
      .description(`${description} — not built yet`)
      .allowUnknownOption()
      .allowExcessArguments()
      .action(() => {
        process.stderr.write(`messaging: \`${name}\` is not built yet in this version\n`);
        process.exit(EXIT.usage);
      });
  }
}
