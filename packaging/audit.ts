/**
 * The dependency vulnerability check: `bun audit` (the npm registry's advisory database) over every installed
 * package, each finding marked by whether the package is bundled into the binary or only used to build and test.
 *
 *   bun run audit                    → runs `bun audit --json` and prints the findings
 *   bun run audit --input saved.json → reads a saved `bun audit --json` answer instead (CI that audits elsewhere)
 *   --strict                         → development-only findings fail too
 *
 * Exit codes: 0 nothing in the binary is affected, 1 a bundled package has an advisory (or, with --strict, any
 * package), 2 the advisory database could not be asked — never reported as a clean result.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { packageDirOf } from "./sbom.ts";

/** One advisory as the registry's bulk endpoint answers it (`bun audit --json` prints that answer as is). */
export interface Advisory {
  id?: number;
  title?: string;
  severity?: string;
  url?: string;
  vulnerable_versions?: string;
}

export interface Finding {
  name: string;
  advisory: Advisory;
  inBinary: boolean;
}

const SEVERITY_ORDER = ["critical", "high", "moderate", "low", "info"];

/**
 * The findings of an audit answer (`{ "<package>": [advisory, …] }`), most severe first. Throws on any other
 * shape, so an error page is never read as "no vulnerabilities".
 */
export function findings(answer: unknown, bundled: ReadonlySet<string>): Finding[] {
  if (!answer || typeof answer !== "object" || Array.isArray(answer)) throw new Error("the audit answer is not an object of package → advisories");
  const out: Finding[] = [];
  for (const [name, advisories] of Object.entries(answer)) {
    if (!Array.isArray(advisories)) throw new Error(`the audit answer for ${name} is not a list of advisories`);
    for (const advisory of advisories as Advisory[]) out.push({ name, advisory, inBinary: bundled.has(name) });
  }
  const rank = (f: Finding) => {
    const at = SEVERITY_ORDER.indexOf(f.advisory.severity ?? "");
    return at < 0 ? SEVERITY_ORDER.length : at;
  };
  return out.sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

/** The printed report: one line per finding, then a summary line. */
export function auditReport(list: Finding[]): string {
  const lines = list.map((f) => {
    const where = f.inBinary ? "IN THE BINARY" : "dev only";
    const a = f.advisory;
    return `${(a.severity ?? "unknown").toUpperCase().padEnd(8)}  ${f.name}${a.vulnerable_versions ? ` ${a.vulnerable_versions}` : ""}  [${where}]  ${a.title ?? "(no title)"}${a.url ? `  ${a.url}` : ""}`;
  });
  const bundled = list.filter((f) => f.inBinary).length;
  lines.push(
    list.length === 0
      ? "audit: no known vulnerabilities in any installed package"
      : `audit: ${list.length} advisories, ${bundled} affecting packages bundled into the binary, ${list.length - bundled} development-only`,
  );
  return `${lines.join("\n")}\n`;
}

/** Names of the npm packages `cli/main.ts` bundles, from the bundler's metafile (as the SBOM does). */
function bundledNames(root: string): Set<string> {
  const out = mkdtempSync(join(tmpdir(), "messaging-audit-"));
  try {
    const meta = join(out, "meta.json");
    const proc = Bun.spawnSync(["bun", "build", "--target=bun", "cli/main.ts", "--outdir", out, `--metafile=${meta}`], { cwd: root, stdout: "ignore", stderr: "pipe" });
    if (proc.exitCode !== 0) throw new Error(`bun build failed: ${proc.stderr.toString()}`);
    const inputs = Object.keys((JSON.parse(readFileSync(meta, "utf8")) as { inputs: object }).inputs);
    return new Set(inputs.map(packageDirOf).flatMap((dir) => (dir ? [dir.slice(dir.lastIndexOf("node_modules/") + "node_modules/".length)] : [])));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

function unreachable(why: string): never {
  console.error(`audit: could not check for vulnerabilities: ${why}`);
  process.exit(2);
}

if (import.meta.main) {
  const root = join(import.meta.dir, "..");
  const { values } = parseArgs({ options: { input: { type: "string" }, strict: { type: "boolean", default: false } }, strict: true });
  let text: string;
  if (values.input) text = readFileSync(values.input, "utf8");
  else {
    const proc = Bun.spawnSync(["bun", "audit", "--json"], { cwd: root, stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
    text = proc.stdout.toString();
    // `bun audit` exits 1 both for findings and for a failed request; only a JSON answer is a result.
    const error = (text + proc.stderr.toString()).replace(/\x1b\[[0-9;]*m/g, "").match(/error: .*/)?.[0];
    if (error) unreachable(`\`bun audit\` said "${error}" (the registry's advisory endpoint did not answer)`);
  }
  let list: Finding[];
  try {
    list = findings(JSON.parse(text), bundledNames(root));
  } catch (err) {
    unreachable((err as Error).message);
  }
  process.stdout.write(auditReport(list));
  const failing = list.filter((f) => f.inBinary || values.strict);
  process.exit(failing.length > 0 ? 1 : 0);
}
