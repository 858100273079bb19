/** SQLSTATEs the service reacts to (PostgreSQL appendix A). */
export const SQLSTATE = { foreignKeyViolation: "23503", deadlockDetected: "40P01" } as const;

/** Whether `err` is a database error with this SQLSTATE, as both drivers (postgres.js and PGlite) report it. */
export function hasSqlState(err: unknown, code: string): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}
