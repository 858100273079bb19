// packaging/build.ts as `bun run build` runs it: the license gate refuses the build, names the package, and
// leaves no binary behind; an unknown target is a usage error before anything is compiled.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "msg-test-build-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function mtime(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

test("a bundled license missing from the allowlist fails the build, and dist keeps what it had", () => {
  const allowlist = join(dir, "only-mit.json");
  writeFileSync(allowlist, JSON.stringify({ licenses: { MIT: "the only license this test allows" } }));
  const before = mtime(join(ROOT, "dist", "messaging"));
  const r = Bun.spawnSync(["bun", "packaging/build.ts", "--allowlist", allowlist], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const stderr = r.stderr.toString();
  expect(r.exitCode).toBe(1);
  // postgres is Unlicense and drizzle-orm Apache-2.0: both bundled, neither MIT.
  expect(stderr).toMatch(/REFUSED\s+postgres@\S+\s+Unlicense/);
  expect(stderr).toMatch(/build: license policy: .*drizzle-orm@\S+ \(Apache-2\.0 is not on the allowlist\)/);
  expect(mtime(join(ROOT, "dist", "messaging"))).toBe(before);
  expect(readdirSync(join(ROOT, "dist")).filter((name) => name.startsWith(".build-"))).toEqual([]);
}, 120_000);

test("an unknown target is refused before anything is built", () => {
  const r = Bun.spawnSync(["bun", "packaging/build.ts", "--target", "windows-x64"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  expect(r.stderr.toString()).toContain("build: unknown target windows-x64 (known: linux-x64, linux-x64-baseline, linux-arm64)");
  expect(r.exitCode).toBe(2);
});
