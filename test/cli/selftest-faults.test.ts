// What `messaging selftest` must catch: a target that cannot be tested stops the run with one line, and a
// service with one behaviour broken (a proxy in front of the real binary corrupts it) fails the case that
// checks that behaviour, by name, with exit 1. Bad usage exits 2.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, killAll, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate } from "../helpers/database.ts";

const scratch: string[] = [];
const running: ServeProcess[] = [];
const servers: { stop(force?: boolean): unknown }[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "msg-test-selftest-faults-"));
  scratch.push(dir);
  return dir;
}

/** A stand-in HTTP server on a free loopback port. */
function fakeServer(fetch: (req: Request) => Response | Promise<Response>): string {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch });
  servers.push(server);
  return `http://127.0.0.1:${server.port}`;
}

beforeAll(ensureBinary, 180_000);
afterAll(async () => {
  for (const s of servers) s.stop(true);
  await Promise.all(running.map((s) => s.stop().catch(() => {})));
  killAll(running);
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe("a target that cannot be tested fails fast with one line (exit 1)", () => {
  test("nothing listening", async () => {
    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const url = `http://127.0.0.1:${closed.port}`;
    closed.stop(true);
    const r = await runBinary(["selftest", "--target", url], { cwd: tempDir() });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toStartWith(`messaging selftest: cannot reach ${url}: `);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  test("a web page instead of the API", async () => {
    const url = fakeServer(() => new Response("<!doctype html><html><body>Welcome to nginx!</body></html>", { headers: { "content-type": "text/html" } }));
    const r = await runBinary(["selftest", "--target", url], { cwd: tempDir() });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`messaging selftest: ${url} answered /healthz with an HTML page (HTTP 200), not the messaging API: is this the right URL?\n`);
  });

  test("another JSON service with a health check of the same shape", async () => {
    const url = fakeServer((req) =>
      new URL(req.url).pathname === "/healthz" ? Response.json({ status: "ok" }) : Response.json({ error: "no such route" }, { status: 404 }),
    );
    const r = await runBinary(["selftest", "--target", url], { cwd: tempDir() });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`messaging selftest: ${url} is not the messaging API: /openapi.json answered HTTP 404 without the route /api/messages/sms\n`);
  });
});

describe("bad usage exits 2 with one line", () => {
  test.each([
    [[], "--target"],
    [["--target", "ftp://example.test"], "--target must be an http or https URL"],
    [["--target", "http://127.0.0.1:9/api"], "without the path /api"],
    [["--target", "http://127.0.0.1:9", "--only", "nosuchtag"], "--only names no case: nosuchtag"],
    [["--target", "http://127.0.0.1:9", "--timeout", "0"], "--timeout must be seconds"],
    [["--target", "http://127.0.0.1:9", "--token", "a", "--token-file", "/dev/null"], "--token or --token-file"],
  ])("selftest %j", async (args, message) => {
    const r = await runBinary(["selftest", ...args], { cwd: tempDir() });
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(message);
  });
});

type Fault = "none" | "drop-frame-options" | "405-as-404" | "forget-provider-ids" | "never-sent";

describe("a service with one behaviour broken fails the case that checks it, by name (exit 1)", () => {
  let fault: Fault = "none";
  let proxy: string;
  let server: ServeProcess;

  /** Forwards to the real service, then breaks what `fault` names. */
  async function forward(server: ServeProcess, req: Request): Promise<Response> {
    const url = new URL(req.url);
    let body = req.method === "GET" || req.method === "HEAD" ? undefined : await req.text();
    if (fault === "forget-provider-ids" && url.pathname === "/api/webhooks/sms" && body) {
      // Every delivery looks new to the service: deduplication can no longer work.
      try {
        body = JSON.stringify({ ...JSON.parse(body), messaging_provider_id: crypto.randomUUID() });
      } catch {
        // not JSON: forwarded as it came
      }
    }
    const upstream = await fetch(`${server.url}${url.pathname}${url.search}`, { method: req.method, headers: req.headers, body, redirect: "manual" });
    const headers = new Headers(upstream.headers);
    headers.delete("content-length");
    headers.delete("content-encoding");
    let status = upstream.status;
    if (fault === "never-sent" && /^\/api\/messages\/\d+$/.test(url.pathname)) {
      // Delivery seems never to end: every sent message reads back as failed.
      const text = (await upstream.text()).replace('"status":"sent"', '"status":"failed"');
      return new Response(text, { status, headers });
    }
    if (fault === "drop-frame-options") headers.delete("x-frame-options");
    if (fault === "405-as-404" && status === 405) {
      status = 404;
      headers.delete("allow");
    }
    return new Response(await upstream.arrayBuffer(), { status, headers });
  }

  beforeAll(async () => {
    const dir = tempDir();
    await copyEmbeddedTemplate(join(dir, "messaging-data"), { migrated: true });
    server = await startServe({ cwd: dir, env: { API_RATE_LIMIT_PER_IP_PER_MIN: "100000" } });
    running.push(server);
    proxy = fakeServer((req) => forward(server, req));
  }, 120_000);

  async function runWith(f: Fault, only: string) {
    fault = f;
    const dir = tempDir();
    const json = join(dir, "report.json");
    const r = await runBinary(["selftest", "--target", proxy, "--only", only, "--report-json", json], { cwd: dir, timeoutMs: 120_000 });
    const report = JSON.parse(readFileSync(json, "utf8")) as { cases: { id: string; outcome: string; reason: string | null }[] };
    const failed = report.cases.filter((c) => c.outcome === "failed");
    return { ...r, failed };
  }

  test("through the proxy with no fault, the same selection passes (the proxy itself breaks nothing)", async () => {
    const r = await runWith("none", "headers,errors,dedup");
    expect(r.failed).toEqual([]);
    expect(r.exitCode).toBe(0);
  }, 120_000);

  test("a missing X-Frame-Options fails the security-header cases", async () => {
    const r = await runWith("drop-frame-options", "headers");
    expect(r.exitCode).toBe(1);
    expect(r.failed.map((c) => c.id)).toEqual(["security.headers-success", "security.headers-errors"]);
    expect(r.failed[0]!.reason).toContain('x-frame-options is null, not "DENY"');
    expect(r.stdout).toContain("FAIL security.headers-success");
    expect(r.stdout).toMatch(/^\d+ passed, 2 failed, \d+ skipped$/m);
  }, 120_000);

  test("a 404 where the route exists under another method fails errors.method-not-allowed", async () => {
    const r = await runWith("405-as-404", "errors");
    expect(r.exitCode).toBe(1);
    expect(r.failed.map((c) => c.id)).toEqual(["errors.method-not-allowed"]);
    expect(r.failed[0]!.reason).toContain("expected HTTP 405, got 404");
  }, 120_000);

  test("a case that changed the mock provider's config and then failed still puts the config back", async () => {
    const config = { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: 4242, latency_ms: 5, delivery_report_pct: 0, breaker_open_secs: null };
    const put = await fetch(`${server.url}/api/provider/mock/config`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(config) });
    expect(put.status).toBe(200);
    const r = await runWith("never-sent", "delivery.sent");
    expect(r.exitCode).toBe(1);
    expect(r.failed.map((c) => c.id)).toEqual(["delivery.sent"]);
    expect(r.failed[0]!.reason).toContain("ended failed");
    expect(await (await fetch(`${server.url}/api/provider/mock/config`)).json()).toEqual(config);
  }, 120_000);

  test("webhooks that are never recognised as repeats fail the deduplication case", async () => {
    const r = await runWith("forget-provider-ids", "dedup");
    expect(r.exitCode).toBe(1);
    expect(r.failed.map((c) => c.id)).toContain("webhooks.dedup");
    expect(r.stdout).toContain("FAIL webhooks.dedup");
  }, 120_000);
});
