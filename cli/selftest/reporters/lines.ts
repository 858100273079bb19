import type { CaseResult } from "../runner.ts";

/** The words a case's outcome is printed with, the same width each. */
export const LABEL = { passed: "PASS", failed: "FAIL", skipped: "SKIP" } as const;

/** One case as a line (and an indented reason under a failure or skip), shared by the TTY and plain reporters. */
export function caseLines(r: CaseResult, paint: (outcome: CaseResult["outcome"], text: string) => string = (_, t) => t): string[] {
  const lines = [`${paint(r.outcome, LABEL[r.outcome])} ${r.id} — ${r.title} (${r.durationMs} ms)`];
  if (r.reason) lines.push(`     ${r.outcome === "skipped" ? "skipped: " : ""}${r.reason}`);
  if (r.outcome === "failed") lines.push(`     contract: ${r.spec}`);
  return lines;
}
