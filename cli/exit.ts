import { isDatabaseUnavailable, rootCauseMessage } from "../src/db/availability.ts";
import { OperatorError } from "../src/operator-error.ts";
import { CredentialError } from "../src/security/keyring.ts";

/** Exit codes of every command: 0 ok, 1 a check or operation failed, 2 bad usage or configuration. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/**
 * Bad arguments found once a command is under way (e.g. with its database open): thrown rather than exiting on the
 * spot, so the database is closed first. `fail` prints it and exits 2.
 */
export class UsageError extends OperatorError {
  override name = "UsageError";
}

/**
 * Prints an operator-facing failure as one line on stderr and exits; unexpected errors keep their stack.
 * It imports leaf modules only and nothing of config, database or server, so every command can load it up front.
 */
export function fail(err: unknown): never {
  if (err instanceof CredentialError) {
    // A stored credential that does not decrypt: the operation failed, and the message names it.
    process.stderr.write(`messaging: ${err.message}\n`);
    process.exit(EXIT.failed);
  }
  if (err instanceof OperatorError) {
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
