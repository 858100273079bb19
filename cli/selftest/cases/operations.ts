import { type Case, check, checkEqual, checkStatus, clip } from "../case.ts";
import { accept, smsPayload } from "./fixtures.ts";

/** SPEC §7: health, readiness, metrics and the API's own description. */
export const operationsCases: Case[] = [
  {
    id: "operations.healthz",
    title: "GET /healthz answers 200 {\"status\": \"ok\"} as JSON",
    tags: ["operations", "health"],
    spec: "§7 GET /healthz → 200 {\"status\": \"ok\"} while the process runs",
    async run({ http }) {
      const a = await http.get("/healthz");
      checkStatus(a, 200, "GET /healthz");
      checkEqual(a.body.status, "ok", "GET /healthz status");
      check((a.headers.get("content-type") ?? "").includes("application/json"), "GET /healthz is not served as application/json");
    },
  },
  {
    id: "operations.readyz",
    title: "GET /readyz answers 200 while the database answers and migrations are current",
    tags: ["operations", "health"],
    spec: "§7 GET /readyz → 200 when the database answers and migrations are current",
    async run({ http }) {
      checkStatus(await http.get("/readyz"), 200, "GET /readyz");
    },
  },
  {
    id: "operations.openapi",
    title: "GET /openapi.json is an OpenAPI 3 document naming every route of the contract",
    tags: ["operations", "docs"],
    spec: "§7 GET /openapi.json → OpenAPI 3 document generated from the route schemas",
    async run({ http }) {
      const a = await http.get("/openapi.json");
      checkStatus(a, 200, "GET /openapi.json");
      check(String(a.body.openapi).startsWith("3."), `openapi is ${String(a.body.openapi)}, not 3.x`);
      const paths = (a.body.paths ?? {}) as Record<string, Record<string, unknown>>;
      const expected: [string, string][] = [
        ["/api/messages/sms", "post"],
        ["/api/messages/email", "post"],
        ["/api/webhooks/sms", "post"],
        ["/api/webhooks/email", "post"],
        ["/api/conversations", "get"],
        ["/api/conversations/{id}/messages", "get"],
        ["/api/messages/{id}", "get"],
      ];
      const missing = expected.filter(([path, method]) => !paths[path]?.[method]).map(([p, m]) => `${m.toUpperCase()} ${p}`);
      check(missing.length === 0, `the document lacks ${missing.join(", ")}`);
      const send = paths["/api/messages/sms"]!.post as { requestBody?: unknown };
      check(send.requestBody !== undefined, "POST /api/messages/sms documents no request body");
    },
  },
  {
    id: "operations.docs",
    title: "GET /docs serves the API reference as HTML that loads nothing from other origins",
    tags: ["operations", "docs"],
    spec: "§7 GET /docs works inside the binary without internet; §8 the docs page gets the narrowest policy that lets it run",
    async run({ http }) {
      const a = await http.get("/docs", { headers: { accept: "text/html" } });
      checkStatus(a, 200, "GET /docs");
      check((a.headers.get("content-type") ?? "").includes("text/html"), "GET /docs is not text/html");
      const external = /<script[^>]+src=["']https?:\/\//i.exec(a.text);
      check(!external, `the page loads a script from another origin: ${clip(external?.[0] ?? "")}`);
      const csp = a.headers.get("content-security-policy") ?? "";
      check(csp.includes("frame-ancestors 'none'"), `the docs page's Content-Security-Policy lacks frame-ancestors 'none': ${csp}`);
    },
  },
  {
    id: "operations.metrics-prometheus",
    title: "GET /metrics is Prometheus text with messaging_ counters and histograms, and no addresses in it",
    tags: ["operations", "metrics"],
    spec: "§7 GET /metrics → Prometheus text (messaging_ prefix, _total counters, _seconds histograms, no per-address labels)",
    async run(ctx) {
      const sent = smsPayload(ctx);
      await accept(ctx, "/api/messages/sms", sent, "a send to be counted");
      const a = await ctx.http.get("/metrics", { headers: { accept: "text/plain" } });
      checkStatus(a, 200, "GET /metrics");
      check((a.headers.get("content-type") ?? "").includes("text/plain"), `GET /metrics is ${a.headers.get("content-type")}, not text/plain`);
      check(/^# TYPE messaging_\w+_total counter$/m.test(a.text), "no messaging_…_total counter in /metrics");
      check(/^# TYPE messaging_\w+_seconds histogram$/m.test(a.text), "no messaging_…_seconds histogram in /metrics");
      check(/^messaging_messages_accepted_total\{[^}]*\} [1-9]/m.test(a.text), "messaging_messages_accepted_total does not count the send just made");
      const leaked = [sent.from, sent.to, String(sent.from).slice(1)].filter((address) => a.text.includes(String(address)));
      check(leaked.length === 0, `/metrics names an address: ${leaked.join(", ")}`);
    },
  },
  {
    id: "operations.metrics-json",
    title: "GET /metrics with Accept: application/json answers a flat JSON object of counters with worker_processed",
    tags: ["operations", "metrics"],
    spec: "§7 with Accept: application/json /metrics answers a flat JSON object including worker_processed",
    async run({ http }) {
      const a = await http.get("/metrics", { headers: { accept: "application/json" } });
      checkStatus(a, 200, "GET /metrics (JSON)");
      check(typeof a.body.worker_processed === "number", `worker_processed is not a number: ${clip(a.text)}`);
      const nested = Object.entries(a.body).filter(([, v]) => typeof v !== "number");
      check(nested.length === 0, `the snapshot is not flat: ${nested.map(([k]) => k).join(", ")}`);
    },
  },
];
