/**
 * A data directory the compiled binary cannot create, write or lock: `serve` says so in one line naming the path
 * and what is wrong, exits 2 and prints no stack; `check` reports the same sentence as its database error.
 * The read-only cases mount a small tmpfs (the tests run as root); the permission case runs the binary as
 * `nobody` through setpriv. Each is skipped, with the reason printed, where that is not possible.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, ensureBinary, runBinary } from "../helpers/binary.ts";

let root: string;
const mounts: string[] = [];

beforeAll(async () => {
  await ensureBinary();
  root = mkdtempSync(join(tmpdir(), "msg-datadir-"));
}, 180_000);
afterAll(() => {
  for (const m of mounts) Bun.spawnSync(["umount", "-l", m]);
  rmSync(root, { recursive: true, force: true });
});

/** Mounts a 4 MB tmpfs at a new directory (read-only when asked); undefined, with the reason printed, when mount is refused. */
function tmpfs(name: string, options = "size=4m"): string | undefined {
  const at = join(root, name);
  mkdirSync(at, { recursive: true });
  const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", options, "tmpfs", at], { stderr: "pipe" });
  if (r.exitCode !== 0) {
    console.log(`skipped: cannot mount a tmpfs here (${r.stderr.toString().trim() || `exit ${r.exitCode}`})`);
    return undefined;
  }
  mounts.push(at);
  return at;
}

/** `serve` exits 2 with exactly one line naming the path and the problem; `check` reports the same. */
async function expectRefused(dataDir: string, problem: string, run = runBinary): Promise<void> {
  const served = await run(["serve"], { env: { MESSAGING_DATA_DIR: dataDir, PORT: "0", HOST: "127.0.0.1" } });
  expect(served.exitCode).toBe(2);
  expect(served.stderr).toBe(`messaging: data directory ${dataDir} ${problem}\n`);
  expect(served.stderr).not.toMatch(/\n\s+at /);
  const checked = await run(["check"], { env: { MESSAGING_DATA_DIR: dataDir } });
  expect(checked.exitCode).toBe(1);
  expect(checked.stdout).toContain(`✗ database: data directory ${dataDir} ${problem}\n`);
}

describe("a data directory that cannot be used", () => {
  test("a file in its place", async () => {
    const dataDir = join(root, "a-file");
    writeFileSync(dataDir, "not a directory");
    await expectRefused(dataDir, "cannot be created: a file is in its place (EEXIST)");
  }, 60_000);

  test("a file in the way on its path", async () => {
    const parent = join(root, "file-parent");
    writeFileSync(parent, "not a directory");
    await expectRefused(join(parent, "data"), "cannot be created: a file is in the way (a path component is not a directory) (ENOTDIR)");
  }, 60_000);

  test("an existing data directory on a file system remounted read-only (the pid file cannot be written)", async () => {
    const at = tmpfs("ro-existing");
    if (!at) return;
    mkdirSync(join(at, "data"));
    expect(Bun.spawnSync(["mount", "-o", "remount,ro", at]).exitCode).toBe(0);
    await expectRefused(join(at, "data"), "cannot be written: read-only file system (EROFS)");
  }, 60_000);

  test("a data directory to be created on a read-only file system", async () => {
    const at = tmpfs("ro-fresh", "size=4m,ro");
    if (!at) return;
    await expectRefused(join(at, "data"), "cannot be created: read-only file system (EROFS)");
  }, 60_000);

  test("a parent this user may not write (permission denied)", async () => {
    const probe = Bun.spawnSync(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BINARY, "--version"], { stderr: "pipe" });
    if (probe.exitCode !== 0) {
      console.log(`skipped: cannot run the binary as nobody through setpriv (${probe.stderr.toString().trim() || `exit ${probe.exitCode}`})`);
      return;
    }
    const parent = join(root, "root-only");
    mkdirSync(parent, { mode: 0o755 });
    const asNobody: typeof runBinary = async (args, options = {}) => {
      const proc = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BINARY, ...args], {
        cwd: tmpdir(),
        env: { PATH: "/usr/bin:/bin", HOME: tmpdir(), ...options.env },
        stdout: "pipe",
        stderr: "pipe",
        timeout: 30_000,
      });
      const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      return { exitCode, stdout, stderr };
    };
    await expectRefused(join(parent, "data"), "cannot be created: permission denied (EACCES)", asNobody);
  }, 60_000);
});
