// End to end: the compiled dist/messaging, each run from an empty temporary directory with a bare
// environment, to prove the binary needs no files beside it and no settings it was not given.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { ensureBinary, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

const scratch: string[] = [];
const running: ServeProcess[] = [];
/** A new empty directory to run the binary in. */
function emptyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "msg-test-bin-"));
  scratch.push(dir);
  return dir;
}
async function serve(options: Parameters<typeof startServe>[0]): Promise<ServeProcess> {
  const s = await startServe(options);
  running.push(s);
  return s;
}

beforeAll(ensureBinary, 180_000);
afterAll(async () => {
  await Promise.all(running.map((s) => s.stop().catch(() => {})));
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe("messaging --help and --version", () => {
  test("--help lists every command of the contract and exits 0", async () => {
    const r = await runBinary(["--help"], { cwd: emptyDir() });
    expect(r.exitCode).toBe(0);
    for (const command of ["serve", "migrate", "creds", "keys", "check", "selftest"]) {
      expect(r.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, "m"));
    }
  });

  test("--version prints package.json's version and exits 0", async () => {
    const r = await runBinary(["--version"], { cwd: emptyDir() });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  test("every command has --help", async () => {
    for (const command of ["serve", "migrate", "check", "creds"]) {
      const r = await runBinary([command, "--help"], { cwd: emptyDir() });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain(`Usage: messaging ${command}`);
    }
  });

  test("an unknown command exits 2", async () => {
    expect((await runBinary(["frobnicate"], { cwd: emptyDir() })).exitCode).toBe(2);
  });
});

describe("invalid configuration", () => {
  test("PORT=abc stops serve with exit 2 and one line naming PORT and its range", async () => {
    const dir = emptyDir();
    const r = await runBinary(["serve"], { cwd: dir, env: { PORT: "abc" } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe('messaging: invalid setting PORT="abc": must be an integer from 0 to 65535\n');
    expect(readdirSync(dir)).toEqual([]); // refused before touching the data directory
  });

  test("a bad --config file stops with exit 2 naming the key", async () => {
    const dir = emptyDir();
    await Bun.write(join(dir, "messaging.toml"), "prot = 8080\n");
    const r = await runBinary(["--config", "messaging.toml", "check"], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('unknown setting "prot"');
  });

  test("an invalid DATABASE_URL is refused without echoing it", async () => {
    const r = await runBinary(["migrate", "status"], { cwd: emptyDir(), env: { DATABASE_URL: "mysql://app:hunter2@db/x" } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("invalid setting DATABASE_URL=<redacted>");
    expect(r.stderr + r.stdout).not.toContain("hunter2");
  });
});

// One fresh PostgreSQL database walks the operator's path: unmigrated → refused → migrate → serve.
describe("against PostgreSQL (DATABASE_URL)", () => {
  let pg: TestDatabase;
  let env: Record<string, string>;
  beforeAll(async () => {
    pg = await createTestDatabase();
    env = { DATABASE_URL: pg.url, LOG_LEVEL: "warn" };
  });
  afterAll(() => pg.drop());

  test("migrate status --json lists the migrations as pending on a fresh database", async () => {
    const r = await runBinary(["migrate", "status", "--json"], { cwd: emptyDir(), env });
    expect(r.exitCode).toBe(0);
    const status = JSON.parse(r.stdout) as { database: string; migrations: { tag: string; state: string }[] };
    expect(status.migrations.length).toBeGreaterThan(0);
    expect(status.migrations.every((m) => m.state === "pending")).toBe(true);
    expect(status.database).toContain(pg.name);
  });

  test("serve refuses an unmigrated database with exit 2 and says to run `messaging migrate up`", async () => {
    const r = await runBinary(["serve"], { cwd: emptyDir(), env: { ...env, PORT: "0", HOST: "127.0.0.1" } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("messaging migrate up");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("check --json fails (exit 1) while migrations are pending", async () => {
    const r = await runBinary(["check", "--json"], { cwd: emptyDir(), env });
    expect(r.exitCode).toBe(1);
    const results = JSON.parse(r.stdout) as { check: string; status: string }[];
    expect(results).toContainEqual(expect.objectContaining({ check: "migrations", status: "error" }));
  });

  test("migrate up applies the migrations, and a second run says it is up to date", async () => {
    const first = await runBinary(["migrate", "up"], { cwd: emptyDir(), env });
    expect(first.exitCode).toBe(0);
    expect(first.stdout).toContain("applied 0000_init");
    const second = await runBinary(["migrate", "up"], { cwd: emptyDir(), env });
    expect(second.exitCode).toBe(0);
    expect(second.stdout).toContain("up to date, nothing to apply");
  });

  test("migrate status --json then lists every migration as applied", async () => {
    const r = await runBinary(["migrate", "status", "--json"], { cwd: emptyDir(), env });
    expect(r.exitCode).toBe(0);
    const { migrations } = JSON.parse(r.stdout) as { migrations: { state: string; appliedAt: string }[] };
    expect(migrations.every((m) => m.state === "applied" && !Number.isNaN(Date.parse(m.appliedAt)))).toBe(true);
  });

  test("migrate against a server that does not answer exits 1 with one line naming the cause", async () => {
    const r = await runBinary(["migrate", "up"], { cwd: emptyDir(), env: { DATABASE_URL: "postgres://postgres@127.0.0.1:1/none" } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("messaging: cannot reach the database: connect ECONNREFUSED 127.0.0.1:1\n");
  });

  test("check --json passes (exit 0) on the migrated database and never prints the password", async () => {
    const withPassword = new URL(pg.url);
    withPassword.password = "not-needed-by-trust-auth";
    const r = await runBinary(["check", "--json"], { cwd: emptyDir(), env: { ...env, DATABASE_URL: withPassword.toString() } });
    expect(r.exitCode).toBe(0);
    const results = JSON.parse(r.stdout) as { check: string; status: string }[];
    expect(results.some((c) => c.status === "error")).toBe(false);
    expect(results).toContainEqual(expect.objectContaining({ check: "database", status: "ok" }));
    expect(results).toContainEqual(expect.objectContaining({ check: "migrations", status: "ok" }));
    // Auth is on by default.
    expect(results).toContainEqual(expect.objectContaining({ check: "auth", status: "ok" }));
    expect(r.stdout).not.toContain("not-needed-by-trust-auth");
  });

  test("serve on the migrated database answers /readyz 200 and exits 0 on SIGINT", async () => {
    const s = await serve({ cwd: emptyDir(), env: { DATABASE_URL: pg.url } });
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    expect(await s.stop("SIGINT")).toBe(0);
  });
});

describe("serve on the embedded default, in an empty directory", () => {
  let dir: string;
  beforeAll(() => {
    dir = emptyDir();
  });

  test("first start creates ./messaging-data, answers /healthz and /readyz 200, and exits 0 on SIGTERM", async () => {
    const s = await serve({ cwd: dir });
    const health = await fetch(`${s.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
    expect(readdirSync(dir)).toEqual(["messaging-data"]);
    expect(await s.stop()).toBe(0);
    expect(s.stdout()).toContain('"msg":"stopped"');
  });

  test("a second start on the same data directory works and logs one line per request", async () => {
    const s = await serve({ cwd: dir });
    const res = await fetch(`${s.url}/readyz`, { headers: { "x-request-id": "e2e-second-start" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("e2e-second-start");
    expect(s.stdout()).not.toContain("migrations applied"); // already migrated by the first start
    expect(await s.stop()).toBe(0);
    const line = s.stdout().split("\n").find((l) => l.includes("e2e-second-start"));
    expect(JSON.parse(line!)).toMatchObject({ method: "GET", route: "/readyz", status: 200 });
  });

  test("a second process on a data directory in use is refused, and the first keeps serving", async () => {
    const first = await serve({ cwd: dir });
    const second = await runBinary(["serve"], { cwd: dir, env: { PORT: "0", HOST: "127.0.0.1" } });
    expect(second.exitCode).toBe(2);
    expect(second.stderr.trim()).toBe(
      `messaging: data directory ./messaging-data is in use by process ${first.pid}; the embedded database allows one process`,
    );
    expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
    expect(await first.stop()).toBe(0);
  });
});
