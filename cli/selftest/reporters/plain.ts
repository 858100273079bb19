import type { CaseResult, Reporter, Summary } from "../runner.ts";
import { summaryLine } from "../runner.ts";
import { caseLines } from "./lines.ts";

/** Plain lines for logs and pipes: one per case as it ends, then the summary line. */
export class PlainReporter implements Reporter {
  constructor(private readonly write: (text: string) => void) {}

  start(info: { target: string; runId: string; total: number }): void {
    this.write(`selftest of ${info.target}: ${info.total} cases, run ${info.runId}\n`);
  }

  caseDone(result: CaseResult): void {
    this.write(`${caseLines(result).join("\n")}\n`);
  }

  finish(_results: CaseResult[], summary: Summary): void {
    this.write(`${summaryLine(summary)}\n`);
  }
}
