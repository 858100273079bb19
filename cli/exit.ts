import { ConfigError } from "../src/config/index.ts";
import { isDatabaseUnavailable, rootCauseMessage } from "../src/db/availability.ts";
import { DataDirInUseError } from "../src/db/data-dir-lock.ts";
import { MigrationError } from "../src/db/migrate.ts";
import { CredentialError } from "../src/security/keyring.ts";
import { MasterKeyError } from "../src/security/master-key-source.ts";
import { StartupError } from "../src/server.ts";

/** Exit codes of every command: 0 ok, 1 a check or operation failed, 2 bad usage or configuration. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/**
 * Bad arguments found once a command is under way (e.g. with its database open): thrown rather than exiting on the
 * spot, so the database is closed first. `fail` prints it and exits 2.
 */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Prints an operator-facing failure as one line on stderr and exits; unexpected errors keep their stack. */
export function fail(err: unknown): never {
  if (err instanceof CredentialError) {
    // A stored credential that does not decrypt: the operation failed, and the message names it.
    process.stderr.write(`messaging: ${err.message}\n`);
    process.exit(EXIT.failed);
  }
  if (
    err instanceof UsageError ||
    err instanceof ConfigError ||
    err instanceof StartupError ||
    err instanceof MigrationError ||
    err instanceof DataDirInUseError ||
    err instanceof MasterKeyError
  ) {
    process.stderr.write(`messaging: ${err.message}\n`);
    process.exit(EXIT.usage);
  }
  if (isDatabaseUnavailable(err)) {
    // drizzle wraps the cause in "Failed query: …" plus a stack; the operator needs the cause.
    process.stderr.write(`messaging: cannot reach the database: ${rootCauseMessage(err)}\n`);
    process.exit(EXIT.failed);
  }
  process.stderr.write(`messaging: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(EXIT.failed);
}
