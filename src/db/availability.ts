/** An error in a driver's chain of causes, with the fields the checks below read. */
interface Cause {
  code?: unknown;
  severity?: unknown;
  message?: unknown;
}

/**
 * The error and its causes, outermost first, at most five deep: drizzle wraps driver errors ("Failed query: …"),
 * and the code that says what happened sits on an inner one.
 */
function* causes(error: unknown): Generator<Cause> {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) yield e as Cause;
}

const codeOf = (e: Cause) => String(e.code ?? "");

/**
 * True when an error means the database could not be reached or is going away, as opposed to a bad query:
 * the caller answers 503 with Retry-After, and nothing was acknowledged.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (const e of causes(error)) {
    const code = codeOf(e);
    // The embedded database after close() (shutdown in progress): no code, only this message.
    if (/^PGlite is clos(ed|ing)$/.test(String(e.message ?? ""))) return true;
    if (NETWORK_CODES.has(code)) return true;
    // SQLSTATE class 08 (connection exception), 57P0x (shutdown), 53300 (too many connections).
    if (/^08/.test(code) || /^57P0[1-3]$/.test(code) || code === "53300") return true;
    // 57014: the server's statement_timeout cancelled the statement; 25P03: its idle-in-transaction timeout
    // ended the session. Both mean "too slow now", not "bad request".
    if (code === "57014" || code === "25P03") return true;
  }
  return false;
}

/**
 * Which bound an error ran into, for the timeout counter: the client's statement deadline or the server's
 * statement_timeout ("statement"), or the connect timeout ("connect"); undefined for anything else.
 */
export function databaseTimeoutKind(error: unknown): "statement" | "connect" | undefined {
  for (const e of causes(error)) {
    const code = codeOf(e);
    if (code === "DATABASE_TIMEOUT" || code === "57014") return "statement";
    if (code === "CONNECT_TIMEOUT" || code === "CONNECTION_CONNECT_TIMEOUT") return "connect";
  }
  return undefined;
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECTION_CONNECT_TIMEOUT",
  // statement-deadline.ts: a statement went unanswered and its connection was closed.
  "DATABASE_TIMEOUT",
]);

/** The innermost cause's message: drizzle wraps driver errors in "Failed query: …", which hides the reason. */
export function rootCauseMessage(error: unknown): string {
  let e = error as { cause?: unknown; message?: string } | undefined;
  for (let depth = 0; e?.cause && depth < 5; depth++) e = e.cause as typeof e;
  return e?.message ?? String(error);
}

/**
 * True when PostgreSQL itself answered the statement with an error (a SQLSTATE in an ErrorResponse): the
 * statement, and its transaction, did not commit. A lost connection carries no such answer; whether its
 * write committed must be looked up (write-fence.ts).
 */
export function isServerError(error: unknown): boolean {
  for (const { code, severity } of causes(error)) {
    if (typeof severity === "string" && typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return true;
  }
  return false;
}

/**
 * Errors of the connect phase: no connection was made, so no statement was sent and nothing can have
 * committed. (postgres.js sends a query only on a connection that is ready.)
 */
const NEVER_CONNECTED = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "CONNECT_TIMEOUT", "CONNECTION_CONNECT_TIMEOUT"]);

function neverConnected(error: unknown): boolean {
  for (const e of causes(error)) if (NEVER_CONNECTED.has(codeOf(e))) return true;
  return false;
}

/**
 * A connection lost while a write may have been on it, as opposed to an error PostgreSQL reported or a
 * connection never made: only then is the write's outcome unknown until looked up (write-fence.ts).
 */
export const isConnectionLoss = (error: unknown): boolean =>
  isDatabaseUnavailable(error) && !isServerError(error) && !neverConnected(error);
