import type { Command } from "commander";
import { CREDENTIAL_NAMES } from "../../src/providers/kinds.ts";
import { withMigratedDatabase } from "../database.ts";
import { withDatabaseFlags } from "../options.ts";

export const DEFAULT_OVERLAP = "24h";
export const KNOWN_NAMES = [...new Set(Object.values(CREDENTIAL_NAMES).flat())];
/** What the commands do, loaded when one runs (creds-actions.ts imports the store and the configuration). */
const actions = () => import("./creds-actions.ts");

/** The flags of `creds rotate`. */
export interface RotateOptions {
  valueFile?: string;
  overlap?: string;
}

/**
 * `messaging creds set | list | rotate`: the provider credentials, stored encrypted under the master keys. A value
 * is read from a file or stdin, never from the command line (which `ps` and shell history show to others).
 * On the embedded database, run it while `serve` is stopped (the data directory is one process's at a time); on
 * PostgreSQL, running instances pick the change up within seconds. This file declares the commands; what they do
 * is in creds-actions.ts.
 */
export function credsCommand(program: Command): void {
  const creds = program.command("creds").description("manage provider credentials, stored encrypted (set | list | rotate)");

  withDatabaseFlags(creds.command("set").description("store a provider credential, replacing any earlier value at once"))
    .argument("<provider>", "the provider's name in the config file")
    .argument("<name>", `the credential: ${KNOWN_NAMES.join(", ")}`)
    .requiredOption("--value-file <file>", "file holding the value (`-` reads stdin); one trailing newline is dropped")
    .action((provider: string, name: string, options: { valueFile: string }, command: Command) =>
      withMigratedDatabase(command, async (database, config) => (await actions()).setValue(database, config, provider, name, options.valueFile)),
    );

  withDatabaseFlags(creds.command("list").description("list stored credentials: versions, master key ids, dates (never a value)"))
    .option("--json", "machine-readable output")
    .action((options: { json?: boolean }, command: Command) =>
      withMigratedDatabase(command, async (database) => (await actions()).list(database, options.json === true)),
    );

  withDatabaseFlags(
    creds
      .command("rotate")
      .description(
        "without arguments: re-encrypt every credential under the first master key (then the others can be removed); " +
          "with PROVIDER NAME --value-file F: store a new value, the previous one verifying inbound signatures until --overlap ends",
      ),
  )
    .argument("[provider]", "the provider's name in the config file")
    .argument("[name]", "the credential to rotate")
    .option("--value-file <file>", "file holding the new value (`-` reads stdin); one trailing newline is dropped")
    .option("--overlap <duration>", `how long the previous value still verifies, such as 24h, 30m, 90s or 0 (default ${DEFAULT_OVERLAP})`)
    .action((provider: string | undefined, name: string | undefined, options: RotateOptions, command: Command) =>
      withMigratedDatabase(command, async (database, config) => (await actions()).rotate(database, config, provider, name, options)),
    );
}

