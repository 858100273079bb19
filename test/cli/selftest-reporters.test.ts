// The selftest's reporters on results made up here: what a terminal, a log and a CI parser get.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { JunitReporter } from "../../cli/selftest/reporters/junit.ts";
import { PlainReporter } from "../../cli/selftest/reporters/plain.ts";
import { TtyReporter } from "../../cli/selftest/reporters/tty.ts";
import type { CaseResult, Reporter, Summary } from "../../cli/selftest/runner.ts";

const dir = mkdtempSync(join(tmpdir(), "msg-test-selftest-reporters-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const result = (id: string, outcome: CaseResult["outcome"], reason?: string): CaseResult => ({
  id,
  title: `title of ${id}`,
  tags: [id.split(".")[0]!],
  spec: "§2 something promised",
  outcome,
  ...(reason === undefined ? {} : { reason }),
  notes: [],
  apiRequests: 1,
  durationMs: 12,
});

const RESULTS = [
  result("sends.sms", "passed"),
  result("sends.email", "failed", 'body: expected "<p>a & b</p>", got "\u0001odd"'),
  result("security.hsts", "skipped", "the target is plain http"),
];
const SUMMARY: Summary = { passed: 1, failed: 1, skipped: 1, durationMs: 40 };

function play(reporter: Reporter): void {
  reporter.start({ target: "http://127.0.0.1:8080", runId: "abcd1234", total: RESULTS.length });
  RESULTS.forEach((r, i) => reporter.caseDone(r, i + 1, RESULTS.length));
  reporter.finish(RESULTS, SUMMARY);
}

describe("selftest reporters", () => {
  test("plain: one line per case, the reason under a failure or skip, and the summary line last", () => {
    let out = "";
    play(new PlainReporter((t) => (out += t)));
    const lines = out.trimEnd().split("\n");
    expect(lines[0]).toBe("selftest of http://127.0.0.1:8080: 3 cases, run abcd1234");
    expect(lines).toContain("PASS sends.sms — title of sends.sms (12 ms)");
    expect(lines).toContain("FAIL sends.email — title of sends.email (12 ms)");
    expect(lines).toContain("     skipped: the target is plain http");
    expect(lines.at(-1)).toBe("1 passed, 1 failed, 1 skipped");
    expect(out).not.toContain("\x1b[");
  });

  test("tty: a progress bar redrawn under each case, cleared before the summary line", () => {
    let out = "";
    play(new TtyReporter((t) => (out += t)));
    expect(out).toContain("] 0/3");
    expect(out).toContain("] 2/3");
    expect(out).toContain("] 3/3  ✓ 1  ✗ 1  ○ 1");
    expect(out).toContain("\x1b[31mFAIL\x1b[0m sends.email");
    // The last thing written is the summary on a cleared line, so the bar does not stay under it.
    expect(out.endsWith("\r\x1b[2K\x1b[31m1 passed, 1 failed, 1 skipped\x1b[0m\n")).toBe(true);
  });

  test("junit: valid XML whatever the reasons hold, with counts per suite and overall", () => {
    const path = join(dir, "report.xml");
    play(new JunitReporter(path));
    const xml = readFileSync(path, "utf8");
    expect(XMLValidator.validate(xml)).toBe(true);
    const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(xml) as {
      testsuites: { tests: string; failures: string; skipped: string; testsuite: { name: string; tests: string; testcase: unknown }[] };
    };
    expect([parsed.testsuites.tests, parsed.testsuites.failures, parsed.testsuites.skipped]).toEqual(["3", "1", "1"]);
    expect(parsed.testsuites.testsuite.map((s) => [s.name, s.tests])).toEqual([
      ["selftest.sends", "2"],
      ["selftest.security", "1"],
    ]);
    expect(xml).toContain('message="body: expected &quot;&lt;p&gt;a &amp; b&lt;/p&gt;&quot;, got &quot;odd&quot;"');
  });
});
