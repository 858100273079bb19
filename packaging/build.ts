/**
 * Builds the self-contained `messaging` executable(s) with `bun build --compile`, the CycloneDX SBOM of what they
 * bundle, and the license check that fails the build when a bundled package's license is not on
 * packaging/license-allowlist.json.
 *
 *   bun run build                  → dist/messaging for this machine, dist/sbom.cdx.json; license check
 *   bun run build --release        → dist/release/: messaging-linux-x64, messaging-linux-x64-baseline (CPUs
 *                                    without AVX2), messaging-linux-arm64, SHA256SUMS, sbom.cdx.json, licenses.txt
 *   bun run build --target linux-arm64 [--target …]   → the same release layout with only those targets
 *   --allowlist FILE               → judge licenses by another policy file
 *
 * Everything is built in a scratch directory under dist/ and moved into place only once the license check
 * passed, so a refused build leaves no binary behind. Bun fetches the runtime of a foreign target from the npm
 * registry on first use and caches it.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { checkLicenses, licenseReport, readAllowlist } from "./licenses.ts";
import { PGDATA_TEMPLATE_FILE, writeInitdbTemplate } from "./pgdata-template.ts";
import { bundledPackages, cycloneDx, type Metafile } from "./sbom.ts";

const RELEASE_TARGETS = ["linux-x64", "linux-x64-baseline", "linux-arm64"] as const;
const root = join(import.meta.dir, "..");

class BuildError extends Error {}

/**
 * One `bun build --compile` into `outfile`, with `assets` embedded beside the code (`Bun.embeddedFiles` at run
 * time); returns the bundler's metafile.
 */
function compile(target: string | undefined, outfile: string, metafile: string, assets: string[]): Metafile {
  // --splitting: each command's dynamic imports become chunks evaluated only when the command runs (see
  // docs/architecture.md, "Start-up"); --bytecode (ESM needs --format=esm) spares parsing them at every start.
  const args = ["build", "--compile", "--minify", "--sourcemap", "--splitting", "--bytecode", "--format=esm", "cli/main.ts", ...assets, "--outfile", outfile, `--metafile=${metafile}`];
  if (target) args.push(`--target=bun-${target}`);
  const proc = Bun.spawnSync(["bun", ...args], { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (proc.exitCode !== 0) throw new BuildError(`bun build failed for ${target ?? "this machine"}`);
  return JSON.parse(readFileSync(metafile, "utf8")) as Metafile;
}

function sbomTimestamp(): string {
  // SOURCE_DATE_EPOCH (reproducible-builds.org) pins the time for reproducible output.
  const epoch = process.env.SOURCE_DATE_EPOCH;
  return (epoch ? new Date(Number(epoch) * 1000) : new Date()).toISOString().replace(/\.\d{3}Z$/, "Z");
}

async function build(scratch: string, targets: string[], allowlistPath: string): Promise<void> {
  // initdb's output is WebAssembly's, the same for every target: made once, embedded in each.
  const template = join(scratch, PGDATA_TEMPLATE_FILE);
  await writeInitdbTemplate(template);
  const outDir = join(root, "dist", targets.length > 0 ? "release" : "");
  const builds = targets.length === 0 ? [{ target: undefined, file: "messaging" }] : targets.map((t) => ({ target: t, file: `messaging-${t}` }));
  const inputs: Metafile["inputs"] = {};
  const sums: string[] = [];
  for (const { target, file } of builds) {
    const started = performance.now();
    const path = join(scratch, file);
    Object.assign(inputs, compile(target, path, join(scratch, `${file}.meta.json`), [template]).inputs);
    const sha = createHash("sha256").update(readFileSync(path)).digest("hex");
    sums.push(`${sha}  ${file}\n`);
    const mb = (statSync(path).size / 1024 / 1024).toFixed(1);
    console.log(`${sha}  ${relative(root, join(outDir, file))}  (${mb} MiB, ${Math.round(performance.now() - started)} ms)`);
  }

  const packages = bundledPackages(root, { inputs });
  const verdicts = checkLicenses(packages, readAllowlist(allowlistPath));
  const report = licenseReport(verdicts);
  const refused = verdicts.filter((v) => !v.allowed);
  if (refused.length > 0) {
    process.stderr.write(report);
    throw new BuildError(`license policy: ${refused.map((v) => `${v.pkg.name}@${v.pkg.version} (${v.reason})`).join("; ")} — see ${relative(root, allowlistPath)}`);
  }

  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { name: string; version: string; dependencies: Record<string, string> };
  const sbom = cycloneDx({ name: pkg.name, version: pkg.version, bunVersion: Bun.version, directDependencies: Object.keys(pkg.dependencies), timestamp: sbomTimestamp() }, packages);
  // A release directory holds one build's files only: SHA256SUMS must not sit beside a stale binary it omits.
  if (targets.length > 0) rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  for (const { file } of builds) renameSync(join(scratch, file), join(outDir, file));
  writeFileSync(join(outDir, "sbom.cdx.json"), `${JSON.stringify(sbom, null, 2)}\n`);
  if (targets.length > 0) {
    writeFileSync(join(outDir, "licenses.txt"), report);
    writeFileSync(join(outDir, "SHA256SUMS"), sums.join(""));
  }
  console.log(`sbom: ${packages.length} bundled packages in ${relative(root, join(outDir, "sbom.cdx.json"))}; licenses all allowed`);
}

const { values } = parseArgs({
  options: {
    release: { type: "boolean", default: false },
    target: { type: "string", multiple: true },
    allowlist: { type: "string", default: join(import.meta.dir, "license-allowlist.json") },
  },
  strict: true,
});
const targets = values.release ? [...RELEASE_TARGETS] : (values.target ?? []);
const unknown = targets.filter((t) => !(RELEASE_TARGETS as readonly string[]).includes(t));
if (unknown.length > 0) {
  console.error(`build: unknown target ${unknown.join(", ")} (known: ${RELEASE_TARGETS.join(", ")})`);
  process.exit(2);
}
mkdirSync(join(root, "dist"), { recursive: true });
// Under dist/, so the finished files are renamed into place on the same file system.
const scratch = mkdtempSync(join(root, "dist", ".build-"));
try {
  await build(scratch, targets, values.allowlist);
} catch (err) {
  if (!(err instanceof BuildError)) throw err;
  console.error(`build: ${err.message}`);
  process.exitCode = 1;
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
