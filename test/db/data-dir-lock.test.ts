import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataDirInUseError, lockDataDir } from "../../src/db/data-dir-lock.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "msg-lock-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const pidFile = (dataDir: string) => join(dataDir, "messaging.pid");

describe("lockDataDir", () => {
  test("takes the directory, writes this pid, and releases it", () => {
    const dataDir = join(dir, "free");
    const unlock = lockDataDir(dataDir);
    expect(readFileSync(pidFile(dataDir), "utf8")).toBe(String(process.pid));
    unlock();
    expect(existsSync(pidFile(dataDir))).toBe(false);
  });

  test("refuses a directory held by another live process with a typed error naming it", () => {
    const dataDir = join(dir, "held");
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(pidFile(dataDir), String(process.ppid));
    let error: unknown;
    try {
      lockDataDir(dataDir);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(DataDirInUseError);
    expect((error as DataDirInUseError).pid).toBe(process.ppid);
    expect(readFileSync(pidFile(dataDir), "utf8")).toBe(String(process.ppid));
  });

  test("takes over a stale lock left by a process that no longer exists", async () => {
    const dataDir = join(dir, "stale");
    mkdirSync(dataDir, { recursive: true });
    const gone = Bun.spawn(["true"]);
    await gone.exited;
    writeFileSync(pidFile(dataDir), String(gone.pid));
    const unlock = lockDataDir(dataDir);
    expect(readFileSync(pidFile(dataDir), "utf8")).toBe(String(process.pid));
    unlock();
  });
});
