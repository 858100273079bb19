// packaging/audit.ts (`bun run audit`): reading the advisory answer, telling bundled packages from development
// tools, and exit codes that never turn "could not check" into "clean". The registry is not asked here: the
// answers are saved ones passed with --input.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { auditReport, findings } from "../../packaging/audit.ts";

const ROOT = join(import.meta.dir, "..", "..");
const ANSWER = {
  "drizzle-kit": [{ id: 2, title: "ReDoS in a dev tool", severity: "moderate", url: "https://example.test/a/2", vulnerable_versions: "<1" }],
  pino: [{ id: 1, title: "Prototype pollution", severity: "high", url: "https://example.test/a/1", vulnerable_versions: "<99" }],
};

describe("findings and the report", () => {
  test("orders by severity and marks which packages ship in the binary", () => {
    const list = findings(ANSWER, new Set(["pino", "zod"]));
    expect(list.map((f) => [f.name, f.inBinary])).toEqual([
      ["pino", true],
      ["drizzle-kit", false],
    ]);
    const report = auditReport(list);
    expect(report).toContain("HIGH      pino <99  [IN THE BINARY]  Prototype pollution  https://example.test/a/1");
    expect(report).toContain("[dev only]  ReDoS in a dev tool");
    expect(report).toContain("audit: 2 advisories, 1 affecting packages bundled into the binary, 1 development-only");
  });

  test("an empty answer is a clean report", () => {
    expect(auditReport(findings({}, new Set()))).toBe("audit: no known vulnerabilities in any installed package\n");
  });

  test.each([[[]], ["error"], [{ pino: "bad" }]])("an answer of another shape (%p) is refused, not read as clean", (answer) => {
    expect(() => findings(answer, new Set())).toThrow();
  });
});

describe("bun run audit --input", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "msg-test-audit-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function audit(answer: string, ...flags: string[]) {
    const file = join(dir, `answer-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, answer);
    const r = Bun.spawnSync(["bun", "packaging/audit.ts", "--input", file, ...flags], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    return { exitCode: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  }

  test("exits 1 when a package bundled into the binary has an advisory", () => {
    const r = audit(JSON.stringify(ANSWER));
    expect(r.stdout).toContain("pino <99  [IN THE BINARY]");
    expect(r.exitCode).toBe(1);
  });

  test("exits 0 when only development tools are affected, 1 with --strict", () => {
    const devOnly = JSON.stringify({ "drizzle-kit": ANSWER["drizzle-kit"] });
    const r = audit(devOnly);
    expect(r.stdout).toContain("drizzle-kit <1  [dev only]");
    expect(r.exitCode).toBe(0);
    expect(audit(devOnly, "--strict").exitCode).toBe(1);
  });

  test("exits 2 with one clear line when the answer is not an advisory list", () => {
    const r = audit("<html>405 Method Not Allowed</html>");
    expect(r.stderr).toMatch(/^audit: could not check for vulnerabilities: /);
    expect(r.stdout).toBe("");
    expect(r.exitCode).toBe(2);
  });
});
