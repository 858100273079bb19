// `messaging selftest` run as an operator would, from the compiled binary, against `messaging serve` on both
// databases: it passes against the real service, its reports say the same as its summary line, and `--only`
// selects by tag. The faults it must catch are in selftest-faults.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { ALL_CASES } from "../../cli/selftest/cases/index.ts";
import { ensureBinary, killAll, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate, createMigratedTestDatabase, type TestDatabase } from "../helpers/database.ts";

/**
 * Settings that keep these runs short without changing what is checked: the per-client limit is raised (the
 * suite paces itself on a low one, which the last test shows on a small selection) and the breaker's cool-down
 * is 2 s instead of 30.
 */
const FAST = { API_RATE_LIMIT_PER_IP_PER_MIN: "100000", API_BREAKER_OPEN_SECS: "2" };
/**
 * The opt-out case passes on a service that keeps opt-outs (SPEC §4) and is skipped, saying so, on one that does
 * not yet; either is right here, anything else is not. Returns the report without it.
 */
function withoutOptOuts(report: JsonReport | undefined): JsonReport {
  const c = report!.cases.find((x) => x.id === "optouts.stop-and-start")!;
  if (c.outcome !== "passed") {
    expect(c.outcome).toBe("skipped");
    expect(c.reason).toContain("GET /api/opt-outs is 404");
  }
  return { ...report!, cases: report!.cases.filter((x) => x !== c) };
}

interface JsonReport {
  target: string;
  run_id: string;
  summary: { passed: number; failed: number; skipped: number; api_requests: number };
  cases: { id: string; tags: string[]; outcome: "passed" | "failed" | "skipped"; reason: string | null }[];
}

const scratch: string[] = [];
const running: ServeProcess[] = [];
const databases: TestDatabase[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "msg-test-selftest-"));
  scratch.push(dir);
  return dir;
}

async function selftest(args: string[], timeoutMs = 240_000) {
  const dir = tempDir();
  const json = join(dir, "report.json");
  const junit = join(dir, "report.xml");
  const r = await runBinary(["selftest", ...args, "--report-json", json, "--report-junit", junit], { cwd: dir, timeoutMs });
  const report = r.exitCode === 0 || r.exitCode === 1 ? (JSON.parse(readFileSync(json, "utf8")) as JsonReport) : undefined;
  return { ...r, report, junit: report ? readFileSync(junit, "utf8") : "" };
}

const outcomes = (report: JsonReport | undefined, outcome: string) => report!.cases.filter((c) => c.outcome === outcome).map((c) => c.id);

type SelftestRun = Awaited<ReturnType<typeof selftest>>;

/**
 * Starts `run` now and hands back its promise, marked as handled: the test that awaits it sees its failure, and
 * no unhandled rejection ends the file before then.
 */
function started<T>(run: () => Promise<T>): Promise<T> {
  const promise = run();
  promise.catch(() => {});
  return promise;
}

/** The embedded target, auth off (the first describe). */
let embeddedTarget: Promise<ServeProcess>;
/** The PostgreSQL target, auth on, with its key and webhook secret file (the second). */
let keyedTarget: Promise<{ server: ServeProcess; key: string; secretFile: string }>;
/**
 * The four runs through a whole selection, each against a target of its own. They spend most of their time
 * waiting on the service's clocks (send_at, the breaker's cool-down, the paced limit), so they start together
 * when the file begins and each test awaits its own run: the file takes about as long as the longest of them
 * instead of their sum (55 s of a 61 s file, measured one after another).
 */
let fullOnEmbedded: Promise<SelftestRun & { mockBefore: unknown; mockAfter: unknown }>;
let fullKeyed: Promise<SelftestRun>;
let fullOnPostgres: Promise<SelftestRun>;
let pacedOnLowLimit: Promise<SelftestRun>;

beforeAll(async () => {
  await ensureBinary();
  embeddedTarget = started(async () => {
    const dir = tempDir();
    await copyEmbeddedTemplate(join(dir, "messaging-data"), { migrated: true });
    const server = await startServe({ cwd: dir, env: FAST });
    running.push(server);
    return server;
  });
  fullOnEmbedded = started(async () => {
    const server = await embeddedTarget;
    const mockConfig = async () => (await fetch(`${server.url}/api/provider/mock/config`)).json();
    const mockBefore = await mockConfig();
    const r = await selftest(["--target", server.url]);
    return { ...r, mockBefore, mockAfter: await mockConfig() };
  });
  keyedTarget = started(startKeyedTarget);
  fullKeyed = started(async () => {
    const { server, key, secretFile } = await keyedTarget;
    return selftest(["--target", server.url, "--token", key, "--webhook-secret-file", secretFile]);
  });
  fullOnPostgres = started(async () => {
    const pg = await createMigratedTestDatabase();
    databases.push(pg);
    const server = await startServe({ env: { ...FAST, DATABASE_URL: pg.url }, args: ["--migrate"] });
    running.push(server);
    const r = await selftest(["--target", server.url]);
    await server.stop();
    return r;
  });
  pacedOnLowLimit = started(async () => {
    const dir = tempDir();
    await copyEmbeddedTemplate(join(dir, "messaging-data"), { migrated: true });
    // The validation cases cost 55 requests: a burst of 52 makes the run wait on the limit (three times)
    // without spending half a minute on it as a burst of 40 did.
    const server = await startServe({ cwd: dir, env: { API_RATE_LIMIT_PER_IP_PER_MIN: "52" } });
    running.push(server);
    const r = await selftest(["--target", server.url, "--only", "validation"]);
    await server.stop();
    return r;
  });
}, 180_000);

async function startKeyedTarget(): Promise<{ server: ServeProcess; key: string; secretFile: string }> {
  const pg = await createMigratedTestDatabase();
  databases.push(pg);
  const migrated = await runBinary(["migrate", "up"], { env: { DATABASE_URL: pg.url } });
  if (migrated.exitCode !== 0) throw new Error(`migrate up failed: ${migrated.stderr}`);
  const created = await runBinary(["keys", "create", "--name", "selftest", "--scope", "send,read,admin", "--json"], { env: { DATABASE_URL: pg.url } });
  if (created.exitCode !== 0) throw new Error(`keys create failed: ${created.stderr}`);
  const key = (JSON.parse(created.stdout) as { key: string }).key;
  const secret = `whsec-${crypto.randomUUID()}`;
  const secretFile = join(tempDir(), "webhook.secret");
  writeFileSync(secretFile, `${secret}\n`);
  const server = await startServe({ env: { ...FAST, DATABASE_URL: pg.url, MESSAGING_AUTH: "on", MESSAGING_WEBHOOK_SECRETS: secret } });
  running.push(server);
  return { server, key, secretFile };
}

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop().catch(() => {})));
  killAll(running);
  await Promise.all(databases.map((d) => d.drop()));
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe("selftest against serve on the embedded database, auth off", () => {
  let server: ServeProcess;
  beforeAll(async () => {
    server = await embeddedTarget;
  }, 120_000);

  test("every case passes or is skipped for a reason the target explains; exit 0", async () => {
    const r = await fullOnEmbedded;
    // The cases that injected faults put the mock provider's config back.
    expect(r.mockAfter).toEqual(r.mockBefore);
    expect(r.stderr).toBe("");
    expect(outcomes(r.report, "failed")).toEqual([]);
    expect(r.exitCode).toBe(0);
    const skipped = withoutOptOuts(r.report).cases.filter((c) => c.outcome === "skipped");
    expect(skipped.map((c) => c.id).sort()).toEqual(
      [
        "security.auth-missing-key",
        "security.auth-wrong-key",
        "security.auth-webhooks-closed",
        "security.hsts",
        "security.webhook-signature-accepted",
        "security.webhook-signature-refused",
      ].sort(),
    );
    expect(skipped.find((c) => c.id === "security.auth-missing-key")!.reason).toContain("MESSAGING_AUTH=off");
    expect(r.stdout.trim().split("\n").at(-1)).toBe(`${r.report!.summary.passed} passed, 0 failed, ${r.report!.summary.skipped} skipped`);

    // The JSON report has every case of the suite, once.
    expect(r.report!.cases.map((c) => c.id)).toEqual(ALL_CASES.map((c) => c.id));
    // The JUnit report is XML a CI parser reads, with the same counts.
    expect(XMLValidator.validate(r.junit)).toBe(true);
    const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(r.junit) as {
      testsuites: { tests: string; failures: string; skipped: string; testsuite: { testcase: unknown[] | unknown }[] };
    };
    expect(Number(xml.testsuites.tests)).toBe(ALL_CASES.length);
    expect(Number(xml.testsuites.failures)).toBe(0);
    expect(Number(xml.testsuites.skipped)).toBe(r.report!.summary.skipped);
    const testcases = xml.testsuites.testsuite.flatMap((s) => (Array.isArray(s.testcase) ? s.testcase : [s.testcase]));
    expect(testcases.length).toBe(ALL_CASES.length);
  }, 240_000);

  test("--only runs just the cases carrying the tag", async () => {
    const r = await selftest(["--target", server.url, "--only", "idempotency"]);
    expect(r.exitCode).toBe(0);
    const expected = ALL_CASES.filter((c) => c.tags.includes("idempotency")).map((c) => c.id);
    expect(expected.length).toBeGreaterThan(3);
    expect(r.report!.cases.map((c) => c.id)).toEqual(expected);
    expect(outcomes(r.report, "passed")).toEqual(expected);
    expect(r.stdout).toContain(`${expected.length} passed, 0 failed, 0 skipped`);
  }, 120_000);

  test("--skip leaves out the cases carrying the tag", async () => {
    const r = await selftest(["--target", server.url, "--only", "reads", "--skip", "snippets,pagination"]);
    expect(r.exitCode).toBe(0);
    const ids = r.report!.cases.map((c) => c.id);
    expect(ids).toContain("reads.message-order");
    expect(ids.some((id) => id.startsWith("reads.snippet") || id.startsWith("reads.pagination"))).toBe(false);
  }, 120_000);
});

describe("selftest against serve on PostgreSQL, auth on, signed webhooks", () => {
  let server: ServeProcess;
  let key: string;
  beforeAll(async () => {
    ({ server, key } = await keyedTarget);
  }, 120_000);

  test("with the key (--token) and the webhook secret every case passes but HSTS (plain http); exit 0", async () => {
    const r = await fullKeyed;
    expect(outcomes(r.report, "failed")).toEqual([]);
    expect(r.exitCode).toBe(0);
    expect(outcomes(withoutOptOuts(r.report), "skipped")).toEqual(["security.hsts"]);
    for (const id of ["security.auth-missing-key", "security.auth-wrong-key", "security.webhook-signature-refused", "security.webhook-signature-accepted", "delivery.breaker"]) {
      expect(outcomes(r.report, "passed")).toContain(id);
    }
    // The key was never printed.
    expect(r.stdout).not.toContain(key);
  }, 240_000);

  test("without the secret the signed-webhook cases are skipped with the reason, and the rest still pass", async () => {
    const r = await selftest(["--target", server.url, "--token", key, "--only", "webhooks"]);
    expect(r.exitCode).toBe(0);
    const skipped = r.report!.cases.filter((c) => c.outcome === "skipped");
    expect(skipped.length).toBeGreaterThan(3);
    for (const c of skipped) expect(c.reason).toContain("--webhook-secret-file");
    expect(outcomes(r.report, "passed")).toContain("security.webhook-signature-refused");
  }, 120_000);

  test("a target that wants a key, run without one, stops at once with one line (exit 1)", async () => {
    const r = await runBinary(["selftest", "--target", server.url], { cwd: tempDir() });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`messaging selftest: ${server.url} requires an API key (401 without one): pass it with --token\n`);
  }, 60_000);
});

describe("selftest against serve on PostgreSQL, auth off", () => {
  test("every case passes or is skipped; exit 0", async () => {
    const r = await fullOnPostgres;
    expect(outcomes(r.report, "failed")).toEqual([]);
    expect(r.exitCode).toBe(0);
    expect(outcomes(r.report, "passed")).toContain("delivery.breaker");
  }, 240_000);
});

describe("selftest against a low per-client limit", () => {
  test("a selection costing more requests than the target's burst paces itself instead of failing on 429s", async () => {
    const r = await pacedOnLowLimit;
    expect(outcomes(r.report, "failed")).toEqual([]);
    expect(r.exitCode).toBe(0);
    expect(r.report!.summary.api_requests).toBeGreaterThan(52);
  }, 240_000);
});
