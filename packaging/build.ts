/**
 * Builds the self-contained `messaging` executable(s) with `bun build --compile`, the CycloneDX SBOM of what they
 * bundle, and the license check that fails the build when a bundled package's license is not on
 * packaging/license-allowlist.json.
 *
 *   bun run build                  → dist/messaging for this machine, dist/sbom.cdx.json; license check
 *   bun run build --release        → dist/release/: messaging-linux-x64, messaging-linux-x64-baseline (CPUs
 *                                    without AVX2), messaging-linux-arm64, SHA256SUMS, sbom.cdx.json, licenses.txt
 *   bun run build --target linux-arm64 [--target …]   → the same release layout with only those targets
 *
 * Bun fetches the runtime of a foreign target from the npm registry on first use and caches it.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { checkLicenses, licenseReport, readAllowlist } from "./licenses.ts";
import { bundledPackages, cycloneDx, type Metafile } from "./sbom.ts";

const RELEASE_TARGETS = ["linux-x64", "linux-x64-baseline", "linux-arm64"] as const;

const root = join(import.meta.dir, "..");
const { values } = parseArgs({
  options: { release: { type: "boolean", default: false }, target: { type: "string", multiple: true } },
  strict: true,
});
const targets = values.release ? [...RELEASE_TARGETS] : (values.target ?? []);
const outDir = join(root, "dist", targets.length > 0 ? "release" : "");
for (const t of targets) {
  if (!(RELEASE_TARGETS as readonly string[]).includes(t)) fail(`unknown target ${t} (known: ${RELEASE_TARGETS.join(", ")})`);
}

function fail(message: string): never {
  console.error(`build: ${message}`);
  process.exit(1);
}

/** One `bun build --compile`; returns the bundler's metafile. Builds in a scratch directory so only the binary lands in dist. */
function compile(target: string | undefined, outfile: string): Metafile {
  const scratch = mkdtempSync(join(tmpdir(), "messaging-build-"));
  try {
    const args = ["build", "--compile", "--minify", "--sourcemap", "cli/main.ts", "--outfile", join(scratch, "messaging"), `--metafile=${join(scratch, "meta.json")}`];
    if (target) args.push(`--target=bun-${target}`);
    const proc = Bun.spawnSync(["bun", ...args], { cwd: root, stdout: "inherit", stderr: "inherit" });
    if (proc.exitCode !== 0) fail(`bun build failed for ${target ?? "this machine"}`);
    renameSync(join(scratch, "messaging"), outfile);
    return JSON.parse(readFileSync(join(scratch, "meta.json"), "utf8")) as Metafile;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

mkdirSync(outDir, { recursive: true });
const builds = targets.length === 0 ? [{ target: undefined, file: "messaging" }] : targets.map((t) => ({ target: t, file: `messaging-${t}` }));
const inputs: Metafile["inputs"] = {};
const sums: string[] = [];
for (const { target, file } of builds) {
  const started = performance.now();
  const path = join(outDir, file);
  Object.assign(inputs, compile(target, path).inputs);
  const sha = createHash("sha256").update(readFileSync(path)).digest("hex");
  sums.push(`${sha}  ${file}\n`);
  const mb = (statSync(path).size / 1024 / 1024).toFixed(1);
  console.log(`${sha}  ${path.slice(root.length + 1)}  (${mb} MiB, ${Math.round(performance.now() - started)} ms)`);
}

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { name: string; version: string; dependencies: Record<string, string> };
const packages = bundledPackages(root, { inputs });
const epoch = process.env.SOURCE_DATE_EPOCH;
const sbom = cycloneDx(
  {
    name: pkg.name,
    version: pkg.version,
    bunVersion: Bun.version,
    directDependencies: Object.keys(pkg.dependencies),
    timestamp: (epoch ? new Date(Number(epoch) * 1000) : new Date()).toISOString().replace(/\.\d{3}Z$/, "Z"),
  },
  packages,
);
writeFileSync(join(outDir, "sbom.cdx.json"), `${JSON.stringify(sbom, null, 2)}\n`);
const verdicts = checkLicenses(packages, readAllowlist(join(import.meta.dir, "license-allowlist.json")));
const report = licenseReport(verdicts);
if (targets.length > 0) {
  writeFileSync(join(outDir, "licenses.txt"), report);
  writeFileSync(join(outDir, "SHA256SUMS"), sums.join(""));
}
const refused = verdicts.filter((v) => !v.allowed);
if (refused.length > 0) {
  process.stderr.write(report);
  fail(`license policy: ${refused.map((v) => `${v.pkg.name}@${v.pkg.version} (${v.reason})`).join("; ")} — see packaging/license-allowlist.json`);
}
console.log(`sbom: ${packages.length} bundled packages in ${join(outDir, "sbom.cdx.json").slice(root.length + 1)}; licenses all allowed`);
