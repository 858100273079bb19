import { isDatabaseUnavailable, rootCauseMessage } from "../src/db/availability.ts";
import { OperatorError } from "../src/operator-error.ts";

/** Exit codes of every command: 0 ok, 1 a check or operation failed, 2 bad usage or configuration. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/**
 * Prints an operator-facing failure as one line on stderr and exits; unexpected errors keep their stack.
 * It imports two leaf modules and nothing of config, database or server, so every command can load it up front.
 */
export function fail(err: unknown): never {
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
