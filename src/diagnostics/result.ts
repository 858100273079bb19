/** How one finding of `messaging check` counts: `error` fails the check, `warn` fails it only with `--strict`. */
export type CheckStatus = "ok" | "warn" | "error";

/** One line of the report (and one element of `check --json`). */
export interface CheckResult {
  /** What was looked at, in kebab-case: `database`, `migrations`, `egress-allowlist`, … */
  check: string;
  status: CheckStatus;
  message: string;
}

/** True when the report lets `serve` start: no error, and with `strict` no warning either. */
export const reportPasses = (results: readonly CheckResult[], strict: boolean): boolean =>
  results.every((r) => r.status === "ok" || (r.status === "warn" && !strict));
