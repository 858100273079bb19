import { writeFileSync } from "node:fs";
import type { CaseResult, Reporter, Summary } from "../runner.ts";

/** Every case with its outcome, reason, notes and duration, for machines (`--report-json F`). */
export class JsonReporter implements Reporter {
  private info = { target: "", runId: "" };

  constructor(private readonly path: string) {}

  start(info: { target: string; runId: string }): void {
    this.info = { target: info.target, runId: info.runId };
  }

  caseDone(): void {}

  finish(results: CaseResult[], summary: Summary): void {
    const report = {
      target: this.info.target,
      run_id: this.info.runId,
      summary: {
        passed: summary.passed,
        failed: summary.failed,
        skipped: summary.skipped,
        duration_ms: summary.durationMs,
        api_requests: results.reduce((sum, r) => sum + r.apiRequests, 0),
      },
      cases: results.map((r) => ({
        id: r.id,
        title: r.title,
        tags: r.tags,
        spec: r.spec,
        outcome: r.outcome,
        reason: r.reason ?? null,
        notes: r.notes,
        api_requests: r.apiRequests,
        duration_ms: r.durationMs,
      })),
    };
    writeFileSync(this.path, `${JSON.stringify(report, null, 2)}\n`);
  }
}
