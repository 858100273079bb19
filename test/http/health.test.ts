import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { migrateUp } from "../../src/db/migrate.ts";
import { afterResponse, buildTestApp, captureLogger, request, type TestApp } from "../helpers/app.ts";

describe("GET /healthz", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(() => t.close());

  test("answers 200 {status: ok} as JSON", async () => {
    const res = await request(t.app, "GET", "/healthz");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("application/json");
    expect(res.json).toEqual({ status: "ok" });
  });

  test("answers 200 even when the database is not migrated (liveness says nothing about readiness)", async () => {
    const unmigrated = await buildTestApp({ migrate: false });
    try {
      expect((await request(unmigrated.app, "GET", "/healthz")).status).toBe(200);
    } finally {
      await unmigrated.close();
    }
  });

  test("moves to the path set by HEALTH_PATH", async () => {
    const moved = await buildTestApp({ database: t.database, config: { healthPath: "/live" } });
    expect((await request(moved.app, "GET", "/live")).json).toEqual({ status: "ok" });
    expect((await request(moved.app, "GET", "/healthz")).status).toBe(404);
  });
});

// Readiness depends on the database, so it is proven on both kinds. One database per kind walks the cycle
// unmigrated (503) → migrated (200) → closed (503), which also keeps PGlite's start-up cost to one per file.
describe.each(["postgres", "embedded"] as const)("GET /readyz on %s", (kind) => {
  let t: TestApp;
  let logs: ReturnType<typeof captureLogger>;
  beforeAll(async () => {
    logs = captureLogger("info");
    t = await buildTestApp({ database: kind, migrate: false, logger: logs.logger });
  });
  afterAll(() => t.close());

  /** What /readyz must never tell an anonymous caller: where the database is. */
  const databaseWhereabouts = () => [t.database.describe, "127.0.0.1", "5432", "msg_test_", "msg-test-embedded"];

  test("answers 503 service_unavailable with Retry-After while migrations are pending", async () => {
    const res = await request(t.app, "GET", "/readyz");
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(res.json).toEqual({ code: "service_unavailable", message: expect.stringContaining("messaging migrate up"), request_id: expect.any(String) });
  });

  test("answers 200 once every migration is applied, without naming the database", async () => {
    await migrateUp(t.database.db);
    const res = await request(t.app, "GET", "/readyz");
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ status: "ready" });
    for (const secret of databaseWhereabouts()) expect(res.text).not.toContain(secret);
  });

  test("answers 503 with Retry-After when the database is closed, naming neither the database nor the driver error", async () => {
    await t.database.close();
    const res = await request(t.app, "GET", "/readyz", { headers: { "x-request-id": `readyz-down-${kind}` } });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(res.json).toEqual({ code: "service_unavailable", message: "not ready: the database is unavailable", request_id: `readyz-down-${kind}` });
    for (const secret of databaseWhereabouts()) expect(res.text).not.toContain(secret);
    // The operator still learns which database and why, from the log line of that request.
    await afterResponse();
    const line = logs.lines().find((l) => l.request_id === `readyz-down-${kind}` && l.level === "warn");
    expect(line?.detail).toStartWith(t.database.describe);
  });
});

describe("GET /metrics", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp();
  });
  afterAll(() => t.close());

  test("answers Prometheus text with the HTTP, build and default process metrics", async () => {
    await request(t.app, "GET", "/healthz");
    await afterResponse();
    const res = await request(t.app, "GET", "/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("text/plain");
    expect(res.text).toContain("# TYPE messaging_http_requests_total counter");
    expect(res.text).toContain("# TYPE messaging_http_request_duration_seconds histogram");
    expect(res.text).toMatch(/^messaging_build_info\{version="[^"]+",runtime="bun [^"]+"\} 1$/m);
    expect(res.text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(res.text).toMatch(/^messaging_http_requests_total\{method="GET",route="\/healthz",status="200"\} [1-9]/m);
    expect(res.text).toMatch(/^messaging_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="\/healthz",status="200"\} \d/m);
  });

  test("labels requests by route pattern, so a raw path (an address, an id) never becomes a label", async () => {
    await request(t.app, "GET", "/api/conversations/%2B15551230000/nope");
    await afterResponse();
    const res = await request(t.app, "GET", "/metrics");
    expect(res.text).not.toContain("15551230000");
    expect(res.text).toMatch(/route="unmatched",status="404"/);
  });

  test("answers a flat JSON object of numbers, including worker_processed, to Accept: application/json", async () => {
    const res = await request(t.app, "GET", "/metrics", { headers: { accept: "application/json" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("application/json");
    expect(res.json.worker_processed).toBe(0);
    expect(res.json.http_requests).toBeGreaterThan(0);
    for (const value of Object.values(res.json)) expect(typeof value).toBe("number");
  });

  test("answers Prometheus text to a browser-like Accept that ranks text above JSON", async () => {
    const res = await request(t.app, "GET", "/metrics", { headers: { accept: "text/plain, application/json;q=0.5" } });
    expect(res.headers.get("content-type")).toStartWith("text/plain");
  });
});
