import type { CaseResult, Reporter, Summary } from "../runner.ts";
import { summaryLine } from "../runner.ts";
import { caseLines } from "./lines.ts";

const COLOUR = { passed: "\x1b[32m", failed: "\x1b[31m", skipped: "\x1b[33m" } as const;
const RESET = "\x1b[0m";
const CLEAR_LINE = "\r\x1b[2K";
const BAR_WIDTH = 30;

/**
 * For a terminal: each case as it ends, in colour, with a progress bar kept on the last line (cleared and
 * redrawn under every new case line), then the summary line.
 */
export class TtyReporter implements Reporter {
  private counts = { passed: 0, failed: 0, skipped: 0 };

  constructor(private readonly write: (text: string) => void) {}

  start(info: { target: string; runId: string; total: number }): void {
    this.write(`selftest of ${info.target}: ${info.total} cases, run ${info.runId}\n`);
    this.write(this.bar(0, info.total));
  }

  caseDone(result: CaseResult, done: number, total: number): void {
    this.counts[result.outcome] += 1;
    const paint = (outcome: CaseResult["outcome"], text: string) => `${COLOUR[outcome]}${text}${RESET}`;
    this.write(`${CLEAR_LINE}${caseLines(result, paint).join("\n")}\n${this.bar(done, total)}`);
  }

  finish(_results: CaseResult[], summary: Summary): void {
    const colour = summary.failed > 0 ? COLOUR.failed : COLOUR.passed;
    this.write(`${CLEAR_LINE}${colour}${summaryLine(summary)}${RESET}\n`);
  }

  private bar(done: number, total: number): string {
    const filled = total === 0 ? BAR_WIDTH : Math.round((done / total) * BAR_WIDTH);
    const { passed, failed, skipped } = this.counts;
    return `[${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)}] ${done}/${total}  ✓ ${passed}  ✗ ${failed}  ○ ${skipped}`;
  }
}
