import { describe, expect, test } from "bun:test";
import { Counter, Histogram, Registry } from "prom-client";
import { createMetrics, metricsSnapshot } from "../../src/observability/metrics.ts";

// The per-request metrics are tallied in place rather than through prom-client's inc/observe (which hash
// their labels on every call); what a scrape sees must be exactly what prom-client's own metrics would show.

const REQUESTS: [string, string, number, number][] = [
  ["GET", "/healthz", 200, 0.0004],
  ["GET", "/healthz", 200, 0.001], // on a bound: counts in that bucket (le is "less or equal")
  ["GET", "/healthz", 200, 0.03],
  ["POST", "/api/messages/sms", 202, 0.012],
  ["POST", "/api/messages/sms", 400, 0.002],
  ["GET", "unmatched", 404, 7.5], // past the last bound: only in +Inf
  ["GET", "/api/messages/:id", 200, 0.25],
];

/** The same two metrics as prom-client's stock Counter and Histogram, fed the same requests. */
async function stockText(): Promise<string> {
  const registry = new Registry();
  const counter = new Counter({ name: "messaging_http_requests_total", help: "x", labelNames: ["method", "route", "status"], registers: [registry] });
  const histogram = new Histogram({
    name: "messaging_http_request_duration_seconds",
    help: "x",
    labelNames: ["method", "route", "status"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  for (const [method, route, status, seconds] of REQUESTS) {
    counter.inc({ method, route, status: String(status) });
    histogram.observe({ method, route, status: String(status) }, seconds);
  }
  return registry.metrics();
}

/** Only the sample lines of the two per-request metrics (HELP texts differ on purpose above). */
const samples = (text: string) => text.split("\n").filter((l) => /^messaging_http_request/.test(l));

describe("per-request metrics", () => {
  test("the exposition text equals prom-client's own counter and histogram for the same requests", async () => {
    const metrics = createMetrics({ version: "0" });
    for (const [method, route, status, seconds] of REQUESTS) metrics.recordRequest(method, route, status, seconds);
    const ours = samples(await metrics.registry.metrics());
    expect(ours.length).toBeGreaterThan(REQUESTS.length);
    expect(ours).toEqual(samples(await stockText()));
  });

  test("the JSON views (get, getMetricsAsJSON, the snapshot) see the same requests", async () => {
    const metrics = createMetrics({ version: "0" });
    for (const [method, route, status, seconds] of REQUESTS) metrics.recordRequest(method, route, status, seconds);
    const counter = await metrics.httpRequests.get();
    expect(counter.values).toContainEqual({ labels: { method: "GET", route: "/healthz", status: "200" }, value: 3 });
    const histogram = await metrics.httpDuration.get();
    const count = histogram.values.find(
      (v) => (v as { metricName?: string }).metricName === "messaging_http_request_duration_seconds_count" && v.labels.route === "unmatched",
    );
    expect(count).toMatchObject({ labels: { method: "GET", route: "unmatched", status: "404" }, value: 1 });
    expect((await metricsSnapshot(metrics)).http_requests).toBe(REQUESTS.length);
    const json = await metrics.registry.getMetricsAsJSON();
    expect(json.find((m) => m.name === "messaging_http_requests_total")?.values).toHaveLength(5);
  });

  test("a fresh registry shows the metrics with no samples, as prom-client does before the first request", async () => {
    const text = await createMetrics({ version: "0" }).registry.metrics();
    expect(text).toContain("# TYPE messaging_http_requests_total counter");
    expect(text).toContain("# TYPE messaging_http_request_duration_seconds histogram");
    expect(samples(text)).toEqual([]);
  });
});
