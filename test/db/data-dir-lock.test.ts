import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataDirInUseError, lockDataDir } from "../../src/db/data-dir-lock.ts";
import { ensureBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate } from "../helpers/database.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "msg-lock-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const pidFile = (dataDir: string) => join(dataDir, "messaging.pid");

function lockError(dataDir: string): unknown {
  try {
    lockDataDir(dataDir)();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe("lockDataDir", () => {
  test("takes the directory, writes this pid, and lets it be taken again once released", () => {
    const dataDir = join(dir, "free");
    const unlock = lockDataDir(dataDir);
    expect(readFileSync(pidFile(dataDir), "utf8")).toBe(String(process.pid));
    unlock();
    unlock(); // releasing twice is harmless
    expect(existsSync(pidFile(dataDir))).toBe(false);
    lockDataDir(dataDir)();
  });

  test("refuses a directory already held with a typed error naming the holder's pid", () => {
    // flock locks belong to open files, so a second open in this very process is refused like another process.
    const dataDir = join(dir, "held");
    const unlock = lockDataDir(dataDir);
    try {
      const error = lockError(dataDir);
      expect(error).toBeInstanceOf(DataDirInUseError);
      expect((error as DataDirInUseError).pid).toBe(process.pid);
      expect((error as DataDirInUseError).message).toContain(`in use by process ${process.pid}`);
      expect(readFileSync(pidFile(dataDir), "utf8")).toBe(String(process.pid));
    } finally {
      unlock();
    }
  });

  test("the pid file is not the lock: deleting or rewriting it while the directory is held lets no one in", () => {
    const dataDir = join(dir, "pid-file-removed");
    const unlock = lockDataDir(dataDir);
    try {
      rmSync(pidFile(dataDir));
      expect(lockError(dataDir)).toBeInstanceOf(DataDirInUseError);
      writeFileSync(pidFile(dataDir), "");
      expect(lockError(dataDir)).toBeInstanceOf(DataDirInUseError);
    } finally {
      unlock();
    }
  });

  test("a pid file naming a live unrelated process does not block: the pid is never trusted", () => {
    const dataDir = join(dir, "stale-live-pid");
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(pidFile(dataDir), String(process.ppid));
    const unlock = lockDataDir(dataDir);
    expect(readFileSync(pidFile(dataDir), "utf8")).toBe(String(process.pid));
    unlock();
  });
});

describe("one serve per data directory (compiled binary)", () => {
  const serveOn = (dataDir: string) => startServe({ args: ["--port", "0", "--data-dir", dataDir], timeoutMs: 120_000 });
  let dataDir: string;

  beforeAll(async () => {
    await ensureBinary();
    // Create and migrate the database once, so the tests race on the lock rather than wait for initdb (the run's
    // migrated template, copied, spares this one both).
    dataDir = join(dir, "served");
    await copyEmbeddedTemplate(dataDir, { migrated: true });
    const first = await serveOn(dataDir);
    expect(await first.stop()).toBe(0);
  }, 300_000);

  /** A pid file as a killed holder leaves it: naming a process that no longer exists. */
  async function leaveDeadHolderPid(): Promise<void> {
    const gone = Bun.spawn(["true"]);
    await gone.exited;
    writeFileSync(pidFile(dataDir), String(gone.pid));
  }

  test("two binaries started at once over a dead holder's pid file: exactly one wins, ten rounds in a row", async () => {
    for (let round = 0; round < 10; round++) {
      await leaveDeadHolderPid();
      const results = await Promise.allSettled([serveOn(dataDir), serveOn(dataDir)]);
      const winners = results.filter((r): r is PromiseFulfilledResult<ServeProcess> => r.status === "fulfilled").map((r) => r.value);
      const losers = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => String(r.reason));
      try {
        expect({ round, winners: winners.length }).toEqual({ round, winners: 1 });
        expect(losers[0]).toContain("exit 2");
        // The loser may read the pid file before the winner has rewritten it, so the message is only checked
        // for its shape: the pid in it is a hint for the operator, never part of the decision.
        expect(losers[0]).toMatch(/data directory \S+ is in use by (process \d+|another process)/);
      } finally {
        for (const winner of winners) await winner.stop();
      }
    }
  }, 600_000);

  test("a SIGKILLed holder's lock is released by the kernel: the next start succeeds", async () => {
    const holder = await serveOn(dataDir);
    process.kill(holder.pid, "SIGKILL");
    await holder.stop().catch(() => {});
    // Its pid is still in the file; the lock is not.
    expect(readFileSync(pidFile(dataDir), "utf8")).toBe(String(holder.pid));
    const next = await serveOn(dataDir);
    expect(await next.stop()).toBe(0);
  }, 300_000);

  test("a pid file naming a live unrelated process (this test runner) does not block start-up", async () => {
    writeFileSync(pidFile(dataDir), String(process.pid));
    const serve = await serveOn(dataDir);
    expect(await serve.stop()).toBe(0);
  }, 300_000);
});
