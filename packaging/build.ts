/**
 * Builds the self-contained `messaging` executable(s) with `bun build --compile` and prints their sha256.
 *   bun run build                         → dist/messaging for this machine
 *   bun packaging/build.ts --target linux-arm64 [--target linux-x64]
 *                                         → dist/messaging-<target> for each
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const root = join(import.meta.dir, "..");
const { values } = parseArgs({ options: { target: { type: "string", multiple: true } }, strict: true });
const targets = values.target ?? [];

mkdirSync(join(root, "dist"), { recursive: true });
const builds = targets.length === 0 ? [{ target: undefined, outfile: "dist/messaging" }] : targets.map((t) => ({ target: t, outfile: `dist/messaging-${t}` }));

for (const { target, outfile } of builds) {
  // --splitting: each command's dynamic imports become chunks evaluated only when the command runs (see
  // docs/architecture.md, "Start-up"); --bytecode (ESM needs --format=esm) spares parsing them at every start.
  const args = ["build", "--compile", "--minify", "--sourcemap", "--splitting", "--bytecode", "--format=esm", "cli/main.ts", "--outfile", outfile];
  if (target) args.push(`--target=bun-${target}`);
  const started = performance.now();
  const proc = Bun.spawnSync(["bun", ...args], { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (proc.exitCode !== 0) {
    console.error(`build failed for ${target ?? "this machine"}`);
    process.exit(proc.exitCode ?? 1);
  }
  const path = join(root, outfile);
  const sha = createHash("sha256").update(readFileSync(path)).digest("hex");
  const mb = (statSync(path).size / 1024 / 1024).toFixed(1);
  console.log(`${sha}  ${outfile}  (${mb} MiB, ${Math.round(performance.now() - started)} ms)`);
}
