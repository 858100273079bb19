// `messaging selftest` against deployments as they are run, not tuned for the test (issue 21): a default one (auth
// on, every default, the embedded database) passes the whole suite three times in a row with one key, each run
// within 30 s and never meeting an earlier run's data; and one whose limits are set high (a legitimate setting)
// skips, with the reason, the case its settings rule out instead of failing it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, killAll, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate, createMigratedTestDatabase, type TestDatabase } from "../helpers/database.ts";

interface JsonReport {
  summary: { passed: number; failed: number; skipped: number; duration_ms: number; api_requests: number };
  cases: { id: string; outcome: "passed" | "failed" | "skipped"; reason: string | null }[];
}

const KEY = /msg_[a-z2-7]{10}_[A-Za-z0-9_-]{43}/;
const scratch: string[] = [];
const running: ServeProcess[] = [];
const databases: TestDatabase[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "msg-test-selftest-defaults-"));
  scratch.push(dir);
  return dir;
}

async function selftest(args: string[]): Promise<{ exitCode: number; stdout: string; report: JsonReport; wallMs: number }> {
  const dir = tempDir();
  const json = join(dir, "report.json");
  const t0 = performance.now();
  const r = await runBinary(["selftest", ...args, "--report-json", json], { cwd: dir, timeoutMs: 120_000 });
  const wallMs = performance.now() - t0;
  return { exitCode: r.exitCode, stdout: r.stdout, report: JSON.parse(readFileSync(json, "utf8")) as JsonReport, wallMs };
}

const failed = (r: JsonReport) => r.cases.filter((c) => c.outcome === "failed").map((c) => `${c.id}: ${c.reason}`);

beforeAll(ensureBinary, 180_000);
afterAll(async () => {
  await Promise.all(running.map((s) => s.stop().catch(() => {})));
  killAll(running);
  await Promise.all(databases.map((d) => d.drop()));
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe("a default deployment: auth on, every default, the embedded database", () => {
  test("with its first key the whole suite passes three times in a row, each run within 30 s", async () => {
    const dir = tempDir();
    await copyEmbeddedTemplate(join(dir, "messaging-data"), { migrated: true });
    const server = await startServe({ cwd: dir, unset: ["MESSAGING_AUTH"] });
    running.push(server);
    const key = server.stderr().match(KEY)?.[0];
    expect(key).toBeDefined();
    const keyFile = join(dir, "selftest.key");
    await Bun.write(keyFile, `${key}\n`);

    const walls: number[] = [];
    for (let run = 1; run <= 3; run++) {
      const r = await selftest(["--target", server.url, "--token-file", keyFile]);
      walls.push(r.wallMs);
      expect({ run, failed: failed(r.report) }).toEqual({ run, failed: [] });
      expect(r.exitCode).toBe(0);
      // What a default target cannot show: HSTS over plain http, and signatures it has no secret for.
      expect(r.report.cases.filter((c) => c.outcome === "skipped").map((c) => c.id).sort()).toEqual(
        ["security.hsts", "security.webhook-signature-accepted", "security.webhook-signature-refused"].sort(),
      );
      expect(r.report.cases.find((c) => c.id === "delivery.breaker")!.outcome).toBe("passed");
      expect(r.report.cases.find((c) => c.id === "errors.rate-limited")!.outcome).toBe("passed");
    }
    console.log(`[selftest-defaults] three runs against one default deployment: ${walls.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(", ")}`);
    for (const ms of walls) expect(ms).toBeLessThanOrEqual(30_000);
    await server.stop();
  }, 200_000);
});

describe("a deployment with high limits (legitimate settings the suite cannot exhaust)", () => {
  let server: ServeProcess;
  beforeAll(async () => {
    const pg = await createMigratedTestDatabase();
    databases.push(pg);
    server = await startServe({ env: { DATABASE_URL: pg.url, API_RATE_LIMIT_PER_SENDER_PER_MIN: "1000000", API_RATE_LIMIT_PER_IP_PER_MIN: "1000000" }, args: ["--migrate"] });
    running.push(server);
  }, 120_000);

  test("the per-sender case is skipped, saying the limit is above what it may spend; nothing fails; exit 0", async () => {
    const r = await selftest(["--target", server.url, "--only", "ratelimit"]);
    expect(failed(r.report)).toEqual([]);
    expect(r.exitCode).toBe(0);
    const c = r.report.cases.find((x) => x.id === "errors.rate-limited")!;
    expect(c.outcome).toBe("skipped");
    expect(c.reason).toContain("per-sender limit is above the 400 sends");
    expect(c.reason).toContain("API_RATE_LIMIT_PER_SENDER_PER_MIN");
  }, 120_000);
});
