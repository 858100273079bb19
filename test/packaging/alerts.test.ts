// packaging/alerts.yaml: every expression names a metric and labels our registry really has, and — where promtool
// is installed (Debian: apt-get install prometheus) — the file loads and the main alerts fire on synthetic series
// and stay quiet below their thresholds.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MESSAGE_STATUSES } from "../../src/domain/message-status.ts";
import { createMetrics } from "../../src/observability/metrics.ts";

const ALERTS_PATH = join(import.meta.dir, "..", "..", "packaging", "alerts.yaml");
const ALERTS = Bun.YAML.parse(readFileSync(ALERTS_PATH, "utf8")) as { groups: { name: string; rules: Rule[] }[] };
const PROMTOOL = Bun.which("promtool");

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const rules = ALERTS.groups.flatMap((g) => g.rules);
const metrics = createMetrics({ version: "test" });
/** Prometheus's own series, which the rules may use beside ours. */
const BUILTIN: Record<string, string[]> = { up: ["job", "instance"] };
const PROMQL_WORDS = new Set(["sum", "max", "min", "avg", "by", "without", "rate", "increase", "and", "or", "unless", "on", "ignoring", "count"]);

/** Each `name{label op "value", …}` selector in an expression (or a bare metric name, with no matchers). */
function selectors(expr: string): { metric: string; matchers: { label: string; op: string; value: string }[] }[] {
  const out = [];
  for (const m of expr.matchAll(/\b([a-z_][a-z0-9_]*)\s*(\{[^}]*\})?(?!\s*\()/g)) {
    const metric = m[1] as string;
    if (PROMQL_WORDS.has(metric) || (!metric.startsWith("messaging_") && !(metric in BUILTIN))) continue;
    const matchers = [...(m[2] ?? "").matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)].map((x) => ({ label: x[1] as string, op: x[2] as string, value: x[3] as string }));
    out.push({ metric, matchers });
  }
  return out;
}

function labelsOf(metric: string): string[] | undefined {
  if (metric in BUILTIN) return BUILTIN[metric];
  const found = metrics.registry.getSingleMetric(metric) as { labelNames?: string[] } | undefined;
  return found ? (found.labelNames ?? []) : undefined;
}

describe("alerts.yaml against the metrics registry", () => {
  test("has the alerts the operator guide promises", () => {
    const names = rules.map((r) => r.alert);
    for (const name of ["MessagingDeliveryBacklog", "MessagingDeliveryErrors", "MessagingBreakerOpen", "MessagingUncertainDeliveries", "MessagingHigh5xxRate", "MessagingNotReady", "MessagingAuthFailures", "MessagingDatabaseUnavailable", "MessagingEventEndpointBehind", "MessagingEventEndpointDisabled", "MessagingEventFeedHeldBack"]) {
      expect(names).toContain(name);
    }
    expect(new Set(names).size).toBe(names.length);
  });

  test.each(rules.map((r) => [r.alert, r] as const))("%s names only metrics and labels that exist", (_, rule) => {
    const found = selectors(rule.expr);
    expect(found.length).toBeGreaterThan(0);
    for (const { metric, matchers } of found) {
      const labels = labelsOf(metric);
      if (labels === undefined) throw new Error(`${rule.alert}: no metric ${metric} in src/observability/metrics.ts`);
      for (const { label } of matchers) expect(labels).toContain(label);
    }
    for (const by of rule.expr.matchAll(/by \(([^)]*)\)/g)) {
      for (const label of (by[1] as string).split(",").map((l) => l.trim())) {
        // `instance` is added by Prometheus to every scraped series.
        if (label !== "instance") expect(found.some(({ metric }) => labelsOf(metric)?.includes(label))).toBe(true);
      }
    }
  });

  test("status values in the rules are real message statuses, and severities are known", () => {
    for (const rule of rules) {
      for (const { metric, matchers } of selectors(rule.expr)) {
        if (metric !== "messaging_messages_status_total") continue;
        for (const m of matchers) for (const value of m.value.split("|")) expect(MESSAGE_STATUSES).toContain(value as never);
      }
      expect(["critical", "warning", "info"]).toContain(rule.labels?.severity ?? "none");
      expect(rule.annotations?.summary).toBeTruthy();
    }
  });
});

describe.skipIf(!PROMTOOL)("promtool, where installed (Debian: apt-get install prometheus)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "msg-test-alerts-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function promtool(...args: string[]): { exitCode: number; output: string } {
    const r = Bun.spawnSync([PROMTOOL as string, ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    return { exitCode: r.exitCode ?? -1, output: r.stdout.toString() + r.stderr.toString() };
  }

  test("check rules loads every rule", () => {
    const r = promtool("check", "rules", ALERTS_PATH);
    expect(r.output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(r.exitCode).toBe(0);
  });

  test("the alerts fire on series past their thresholds and stay quiet below them", () => {
    // promtool compares annotations too; the rules' semantics are tested on a copy without them (JSON is YAML).
    const bare = { groups: ALERTS.groups.map((g) => ({ ...g, rules: g.rules.map(({ annotations: _, ...rule }) => rule) })) };
    writeFileSync(join(dir, "rules.yaml"), JSON.stringify(bare));
    const fires = (alertname: string, at: string, labels: Record<string, string>[]) => ({ eval_time: at, alertname, exp_alerts: labels.map((l) => ({ exp_labels: l })) });
    const tests = [
      {
        interval: "1m",
        input_series: [
          { series: 'messaging_breaker_state{instance="a",provider="sms-mms"}', values: "2x20" },
          { series: 'messaging_breaker_state{instance="a",provider="email"}', values: "1x20" },
          { series: 'up{job="messaging",instance="a"}', values: "0x20" },
          { series: "messaging_delivery_oldest_due_seconds", values: "600x20" },
          { series: 'messaging_delivery_attempts_total{provider="sms-mms",outcome="accepted"}', values: "0+10x20" },
          { series: 'messaging_delivery_attempts_total{provider="sms-mms",outcome="transient_error"}', values: "0+10x20" },
          { series: 'messaging_delivery_attempts_total{provider="email",outcome="accepted"}', values: "0+100x20" },
          { series: 'messaging_delivery_attempts_total{provider="email",outcome="transient_error"}', values: "0+1x20" },
          { series: 'messaging_http_requests_total{instance="a",route="/readyz",method="GET",status="503"}', values: "0+6x20" },
          { series: 'messaging_http_requests_total{instance="a",route="/api/messages/sms",method="POST",status="202"}', values: "0+90x20" },
          { series: "messaging_delivery_uncertain_total", values: "0 0 0 1 1 1 1 1 1 1 1" },
          { series: 'messaging_event_oldest_pending_seconds{instance="a",endpoint="3"}', values: "1200x20" },
          { series: 'messaging_event_oldest_pending_seconds{instance="a",endpoint="4"}', values: "10x20" },
          { series: 'messaging_event_endpoints_disabled{instance="a"}', values: "1x20" },
          { series: 'messaging_event_feed_held_back_seconds{instance="a"}', values: "300x20" },
        ],
        alert_rule_test: [
          fires("MessagingBreakerOpen", "10m", [{ severity: "critical", instance: "a", provider: "sms-mms" }]),
          fires("MessagingDown", "10m", [{ severity: "critical", job: "messaging", instance: "a" }]),
          fires("MessagingDeliveryBacklog", "15m", [{ severity: "warning" }]),
          fires("MessagingDeliveryErrors", "15m", [{ severity: "warning", provider: "sms-mms" }]),
          fires("MessagingNotReady", "10m", [{ severity: "critical", instance: "a" }]),
          // 6 of 96 answers a minute are 5xx: over 5%.
          fires("MessagingHigh5xxRate", "15m", [{ severity: "warning" }]),
          fires("MessagingUncertainDeliveries", "5m", [{ severity: "warning" }]),
          fires("MessagingDeliveryQueueLarge", "15m", []),
          fires("MessagingEventEndpointBehind", "15m", [{ severity: "warning", endpoint: "3" }]),
          fires("MessagingEventEndpointDisabled", "15m", [{ severity: "warning" }]),
          fires("MessagingEventFeedHeldBack", "15m", [{ severity: "warning" }]),
        ],
      },
      {
        interval: "1m",
        input_series: [
          { series: "messaging_delivery_oldest_due_seconds", values: "100x20" },
          { series: 'messaging_breaker_state{instance="a",provider="sms-mms"}', values: "0x20" },
          { series: 'messaging_http_requests_total{instance="a",route="/api/messages/sms",method="POST",status="500"}', values: "0+1x20" },
          { series: 'messaging_http_requests_total{instance="a",route="/api/messages/sms",method="POST",status="202"}', values: "0+99x20" },
          { series: 'messaging_event_feed_held_back_seconds{instance="a"}', values: "0.01x20" },
        ],
        alert_rule_test: ["MessagingDeliveryBacklog", "MessagingBreakerOpen", "MessagingHigh5xxRate", "MessagingEventFeedHeldBack"].map((name) => fires(name, "15m", [])),
      },
    ];
    writeFileSync(join(dir, "tests.yaml"), JSON.stringify({ rule_files: ["rules.yaml"], evaluation_interval: "1m", tests }));
    const r = promtool("test", "rules", "tests.yaml");
    expect(r.output).toContain("SUCCESS");
    expect(r.exitCode).toBe(0);
  });
});
