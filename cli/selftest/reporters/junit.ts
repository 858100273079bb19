import { writeFileSync } from "node:fs";
import type { CaseResult, Reporter, Summary } from "../runner.ts";

/** XML text and attribute values; characters XML 1.0 cannot hold at all are dropped. */
function escapeXml(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

const seconds = (ms: number) => (ms / 1000).toFixed(3);

/**
 * JUnit XML for CI (`--report-junit F`): one `<testsuite>` per area (the case id's first part), a `<testcase>`
 * per case with `<failure>` or `<skipped>` carrying the reason.
 */
export class JunitReporter implements Reporter {
  private target = "";

  constructor(private readonly path: string) {}

  start(info: { target: string }): void {
    this.target = info.target;
  }

  caseDone(): void {}

  finish(results: CaseResult[], summary: Summary): void {
    const areas = new Map<string, CaseResult[]>();
    for (const r of results) {
      const area = r.id.split(".")[0]!;
      areas.set(area, [...(areas.get(area) ?? []), r]);
    }
    const suites = [...areas].map(([area, cases]) => {
      const count = (o: CaseResult["outcome"]) => cases.filter((c) => c.outcome === o).length;
      const time = seconds(cases.reduce((sum, c) => sum + c.durationMs, 0));
      const body = cases.map((c) => testcase(area, c)).join("");
      return `  <testsuite name="selftest.${escapeXml(area)}" tests="${cases.length}" failures="${count("failed")}" errors="0" skipped="${count("skipped")}" time="${time}">\n${body}  </testsuite>\n`;
    });
    const total = summary.passed + summary.failed + summary.skipped;
    const xml =
      `<?xml version="1.0" encoding="UTF-8"?>\n` +
      `<testsuites name="messaging selftest of ${escapeXml(this.target)}" tests="${total}" failures="${summary.failed}" errors="0" skipped="${summary.skipped}" time="${seconds(summary.durationMs)}">\n` +
      suites.join("") +
      `</testsuites>\n`;
    writeFileSync(this.path, xml);
  }
}

function testcase(area: string, c: CaseResult): string {
  const open = `    <testcase classname="selftest.${escapeXml(area)}" name="${escapeXml(`${c.id}: ${c.title}`)}" time="${seconds(c.durationMs)}"`;
  const notes = c.notes.length > 0 ? `      <system-out>${escapeXml(c.notes.join("\n"))}</system-out>\n` : "";
  if (c.outcome === "failed") {
    const reason = escapeXml(c.reason ?? "failed");
    return `${open}>\n      <failure message="${reason}">${reason}\n${escapeXml(`contract: ${c.spec}`)}</failure>\n${notes}    </testcase>\n`;
  }
  if (c.outcome === "skipped") return `${open}>\n      <skipped message="${escapeXml(c.reason ?? "skipped")}"/>\n${notes}    </testcase>\n`;
  return notes ? `${open}>\n${notes}    </testcase>\n` : `${open}/>\n`;
}
