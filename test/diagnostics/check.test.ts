import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lockDataDir } from "../../src/db/data-dir-lock.ts";
import { runChecks } from "../../src/diagnostics/check.ts";
import { testConfig } from "../helpers/app.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "msg-check-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("check on the embedded default", () => {
  test("a missing data directory is reported, not created", async () => {
    const dataDir = join(dir, "never-created");
    const report = await runChecks(testConfig({ dataDir }));
    expect(report.ok).toBe(true);
    expect(report.checks.find((c) => c.name === "database")).toMatchObject({ level: "warn" });
    expect(existsSync(dataDir)).toBe(false);
  });

  test("a data directory held by a running serve is a warning pointing at /readyz, not a failure", async () => {
    const dataDir = join(dir, "held");
    // Hold the lock as a running serve would (a flock on a second open file conflicts even in one process).
    const unlock = lockDataDir(dataDir);
    try {
      const report = await runChecks(testConfig({ dataDir }));
      const database = report.checks.find((c) => c.name === "database");
      expect(database?.level).toBe("warn");
      expect(database?.message).toContain(`in use by process ${process.pid}`);
      expect(database?.message).toContain("/readyz");
      expect(report.ok).toBe(true);
    } finally {
      unlock();
    }
  });
});
