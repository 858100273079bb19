import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, type TestApp } from "../helpers/app.ts";
import { get } from "../helpers/messaging.ts";

// The API reference must describe every route of the issue and work without internet access.
let t: TestApp;
let doc: any;
beforeAll(async () => {
  t = await buildTestApp();
  const res = await get(t.app, "/openapi.json");
  expect(res.status).toBe(200);
  doc = res.json;
});
afterAll(() => t.close());

const ROUTES: [string, string][] = [
  ["post", "/api/messages/sms"],
  ["post", "/api/messages/email"],
  ["get", "/api/messages/{id}"],
  ["post", "/api/webhooks/sms"],
  ["post", "/api/webhooks/email"],
  ["get", "/api/conversations"],
  ["get", "/api/conversations/{id}/messages"],
  ["post", "/api/provider/mock/inbound"],
  ["get", "/api/provider/mock/config"],
  ["put", "/api/provider/mock/config"],
  ["post", "/api/provider/mock/reports"],
];

const WRITES: [string, string][] = [
  ["post", "/api/messages/sms"],
  ["post", "/api/messages/email"],
  ["post", "/api/webhooks/sms"],
  ["post", "/api/webhooks/email"],
  ["post", "/api/provider/mock/inbound"],
];

const ref = (response: any) => response?.content?.["application/json"]?.schema?.$ref as string | undefined;

describe("GET /openapi.json", () => {
  test("is an OpenAPI 3 document with info and JSON content type", async () => {
    const res = await get(t.app, "/openapi.json");
    expect(res.headers.get("content-type")).toStartWith("application/json");
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toBe("messaging");
    expect(doc.info.version).toBeString();
  });

  test.each(ROUTES)("documents %s %s", (method, path) => {
    expect(doc.paths[path]?.[method]).toBeDefined();
  });

  test("path parameters use the OpenAPI {id} form (never Elysia's :id) and are declared", () => {
    expect(Object.keys(doc.paths).filter((p) => p.includes(":"))).toEqual([]);
    for (const path of ["/api/messages/{id}", "/api/conversations/{id}/messages"]) {
      expect(doc.paths[path].get.parameters).toContainEqual(expect.objectContaining({ name: "id", in: "path", required: true }));
    }
  });

  test.each([
    ["/api/conversations", "conversations.page"],
    ["/api/conversations/{id}/messages", "conversations.messagesPage"],
  ])("%s documents the cursor query parameter and meta.next_cursor", (path, model) => {
    expect(doc.paths[path].get.parameters).toContainEqual(
      expect.objectContaining({ name: "cursor", in: "query", required: false, schema: expect.objectContaining({ type: "string" }) }),
    );
    const meta = doc.components.schemas[model].properties.meta;
    expect(meta.properties.next_cursor.type).toEqual(["string", "null"]);
    expect(meta.required).toContain("next_cursor");
  });

  test("the docs' own script asset is not listed as an API path", () => {
    expect(Object.keys(doc.paths).some((p) => p.startsWith("/docs"))).toBe(false);
  });

  test.each(WRITES)("%s %s documents 202 with the accepted schema", (method, path) => {
    expect(ref(doc.paths[path][method].responses["202"])).toBe("#/components/schemas/messages.accepted");
  });

  test.each(WRITES)("%s %s documents its 400, 413, 415 and 503 with the error schema", (method, path) => {
    for (const status of ["400", "413", "415", "503"]) {
      expect(ref(doc.paths[path][method].responses[status])).toBe("#/components/schemas/error");
    }
  });

  test.each(ROUTES)("every documented error response of %s %s references the error schema", (method, path) => {
    const responses = doc.paths[path][method].responses as Record<string, unknown>;
    const errors = Object.entries(responses).filter(([status]) => Number(status) >= 400);
    expect(errors.length).toBeGreaterThan(0);
    for (const [, response] of errors) expect(ref(response)).toBe("#/components/schemas/error");
  });

  test("the write routes that take an Idempotency-Key document 409 and 422", () => {
    for (const [method, path] of WRITES.filter(([, p]) => !p.includes("/provider/"))) {
      for (const status of ["409", "422"]) expect(ref(doc.paths[path][method].responses[status])).toBe("#/components/schemas/error");
    }
  });

  test("the read routes document 200 and their 404", () => {
    expect(doc.paths["/api/messages/{id}"].get.responses["200"]).toBeDefined();
    expect(ref(doc.paths["/api/messages/{id}"].get.responses["404"])).toBe("#/components/schemas/error");
    expect(ref(doc.paths["/api/conversations/{id}/messages"].get.responses["404"])).toBe("#/components/schemas/error");
    expect(doc.paths["/api/conversations"].get.responses["200"]).toBeDefined();
  });

  test("the error schema is the envelope: code, message, request_id required, details (and not_cancelable's status) optional", () => {
    const error = doc.components.schemas.error;
    expect(Object.keys(error.properties).sort()).toEqual(["code", "details", "message", "request_id", "status"]);
    expect([...error.required].sort()).toEqual(["code", "message", "request_id"]);
    expect(error.properties.code.enum).toEqual(expect.arrayContaining(["validation_failed", "rate_limited", "service_unavailable"]));
  });

  const BODY_MODELS: [string, string, string][] = [
    ["post", "/api/messages/sms", "messages.sendSms"],
    ["post", "/api/messages/email", "messages.sendEmail"],
    ["post", "/api/webhooks/sms", "webhooks.sms"],
    ["post", "/api/webhooks/email", "webhooks.email"],
    ["post", "/api/provider/mock/inbound", "providerMock.inbound"],
    ["put", "/api/provider/mock/config", "providerMock.config"],
    ["post", "/api/provider/mock/reports", "providerMock.report"],
  ];

  for (const [method, path, model] of BODY_MODELS) {
    test(`${method.toUpperCase()} ${path} documents its application/json request body as ${model}`, () => {
      const content = doc.paths[path][method].requestBody.content;
      expect(content["application/json"].schema.$ref).toBe(`#/components/schemas/${model}`);
    });
  }

  test("the request body models are generated from the route schemas, with their required fields", () => {
    const schemas = doc.components.schemas;
    expect(schemas["messages.sendSms"].required).toEqual(expect.arrayContaining(["from", "to", "type", "body", "timestamp"]));
    expect(schemas["messages.sendSms"].properties.attachments.maxItems).toBe(8);
    expect(schemas["messages.sendSms"].properties.timestamp.format).toBe("date-time");
    expect(schemas["messages.sendEmail"].required).toEqual(expect.arrayContaining(["from", "to", "body", "timestamp"]));
    expect(schemas["webhooks.sms"].required).toContain("messaging_provider_id");
    expect(schemas["webhooks.email"].required).toContain("xillio_id");
    expect(schemas["providerMock.inbound"].required).toContain("channel");
    for (const [method, path] of BODY_MODELS) expect(doc.paths[path][method].requestBody.required).toBe(true);
  });

  test("the mock config body documents its four fields and the three newer optional ones", () => {
    const config = doc.components.schemas["providerMock.config"];
    expect(Object.keys(config.properties).sort()).toEqual(["breaker_open_secs", "delivery_report_pct", "error_pct", "latency_ms", "ratelimit_pct", "seed", "timeout_pct"]);
    expect(config.required).not.toContain("latency_ms");
    expect(config.required).not.toContain("delivery_report_pct");
    expect(config.required).not.toContain("breaker_open_secs");
  });

  test("the mock report route documents its body, its 202 answer and its 404", () => {
    const route = doc.paths["/api/provider/mock/reports"].post;
    expect(ref(route.responses["202"])).toBe("#/components/schemas/providerMock.reportAccepted");
    expect(ref(route.responses["404"])).toBe("#/components/schemas/error");
    const body = doc.components.schemas["providerMock.report"];
    expect(Object.keys(body.properties).sort()).toEqual(["error_code", "message_id", "provider_message_id", "status"]);
    expect(body.required).toEqual(["status"]);
  });

  test("the message detail documents its delivery fields", () => {
    const detail = doc.components.schemas["messages.detail"];
    expect(Object.keys(detail.properties)).toEqual(expect.arrayContaining(["provider", "provider_message_id", "status_reason", "attempts"]));
  });

  test("an email's optional subject is documented on the send and webhook bodies, and items show subject, segments and encoding", () => {
    const schemas = doc.components.schemas;
    for (const model of ["messages.sendEmail", "webhooks.email", "providerMock.inbound"]) {
      expect(schemas[model].properties.subject.description).toContain("998");
      expect(schemas[model].required).not.toContain("subject");
    }
    for (const model of ["messages.item", "messages.detail"]) {
      expect(schemas[model].required).toEqual(expect.arrayContaining(["subject", "segments", "encoding"]));
      expect(JSON.stringify(schemas[model].properties.encoding)).toContain("UCS-2");
    }
  });
});

describe("the document's servers entry (the reference's examples name the server)", () => {
  const servers = async (app: TestApp["app"], url: string, headers: Record<string, string> = {}) =>
    ((await (await app.handle(new Request(url, { headers }))).json()) as { servers?: unknown }).servers;

  test("without MESSAGING_PUBLIC_URL it is the origin each request reached, host and port", async () => {
    expect(await servers(t.app, "http://docs.example.test:8080/openapi.json")).toEqual([{ url: "http://docs.example.test:8080" }]);
    expect(await servers(t.app, "https://other.example.test/openapi.json")).toEqual([{ url: "https://other.example.test" }]);
  });

  test("a forwarded host is not believed", async () => {
    const forwarded = { "x-forwarded-host": "evil.example.test", "x-forwarded-proto": "https", forwarded: "host=evil.example.test" };
    expect(await servers(t.app, "http://docs.example.test/openapi.json", forwarded)).toEqual([{ url: "http://docs.example.test" }]);
  });

  test("the generated document itself is left as it was: other requests and other fields are unchanged", async () => {
    await servers(t.app, "http://first.example.test/openapi.json");
    const second = (await (await t.app.handle(new Request("http://second.example.test/openapi.json"))).json()) as any;
    expect(second.servers).toEqual([{ url: "http://second.example.test" }]);
    expect(second.paths).toEqual(doc.paths);
    expect(second.info).toEqual(doc.info);
  });

  test("with MESSAGING_PUBLIC_URL it is that URL (without a trailing slash), whatever the request's host", async () => {
    const withUrl = await buildTestApp({ config: { publicUrl: "https://messaging.example.test/base/" } });
    try {
      expect(await servers(withUrl.app, "http://127.0.0.1:3000/openapi.json")).toEqual([{ url: "https://messaging.example.test/base" }]);
    } finally {
      await withUrl.close();
    }
  });
});

describe("GET /docs", () => {
  test("answers an HTML page whose script is served from this origin, with no http(s) URL to a CDN", async () => {
    const res = await get(t.app, "/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("text/html");
    const sources = [...res.text.matchAll(/<script[^>]*\ssrc="([^"]+)"/g)].map((m) => m[1]);
    expect(sources).toEqual(["/docs/assets/scalar.js"]);
    expect(res.text).not.toMatch(/(src|href)="https?:/);
    expect(res.text).not.toMatch(/cdn\.jsdelivr|unpkg\.com|cdnjs/);
  });

  test("the reference script is served as JavaScript from the binary", async () => {
    const res = await get(t.app, "/docs/assets/scalar.js");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^(text|application)\/javascript/);
    expect(res.text.length).toBeGreaterThan(100_000);
  });

  test("the script sets zod's jitless option before the bundle runs, so the page never tries eval (its CSP refuses it)", async () => {
    const res = await get(t.app, "/docs/assets/scalar.js");
    const [first] = res.text.split("\n", 1);
    expect(first).toContain("__zod_globalConfig");
    expect(first).toContain("jitless: true");
  });

  test("the page turns off Scalar's cloud-only features and reads the document from /openapi.json", async () => {
    const res = await get(t.app, "/docs");
    const config = JSON.parse(res.text.match(/data-configuration='([^']*)'/)![1]!);
    expect(config).toMatchObject({
      url: "/openapi.json",
      hideClientButton: true,
      telemetry: false,
      agent: { disabled: true },
      mcp: { disabled: true },
      showDeveloperTools: "never",
    });
  });

  test("the docs page has a Content-Security-Policy allowing scripts from 'self' only", async () => {
    const res = await get(t.app, "/docs");
    const csp = res.headers.get("content-security-policy")!;
    const scriptSrc = csp.split(";").map((d) => d.trim()).find((d) => d.startsWith("script-src"))!;
    expect(scriptSrc).toContain("'self'");
    expect(scriptSrc).not.toMatch(/https?:|\*/);
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toMatch(/(^|;\s*)default-src 'none'/);
  });

  test("API routes keep the strict default-src 'none' policy", async () => {
    for (const path of ["/api/conversations", "/openapi.json"]) {
      expect((await get(t.app, path)).headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
    }
  });
});
