import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, expectApiSecurityHeaders, request, type TestApp, type TestResponse } from "../helpers/app.ts";
import { countRows, get, post, smsSend, UNLIMITED } from "../helpers/messaging.ts";

// SPEC §2 on the messaging routes: Accept, Content-Type, the body limit, JSON syntax, 404/405, the envelope.
const MAX_BODY = 2048;
let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: { ...UNLIMITED, maxBodyBytes: MAX_BODY } });
});
afterAll(() => t.close());

function expectError(res: TestResponse, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toStartWith("application/json");
  expect(res.json).toEqual({ code, message: expect.any(String), request_id: res.headers.get("x-request-id") });
}

describe("Accept", () => {
  test.each([
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/*",
    "*/*",
    "text/html, application/json;q=0.1",
    "text/plain;q=1, */*;q=0.01",
    "application/*;q=0.5",
  ])("Accept: %s is acceptable on a send and on a read", async (accept) => {
    expect((await post(t.app, "/api/messages/sms", smsSend(), { accept })).status).toBe(202);
    expect((await get(t.app, "/api/conversations", { accept })).status).toBe(200);
  });

  test("a missing Accept header is acceptable", async () => {
    const res = await t.app.handle(
      new Request("http://localhost/api/messages/sms", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(smsSend()) }),
    );
    expect(res.headers.get("accept")).toBeNull();
    expect(res.status).toBe(202);
  });

  test.each(["text/plain", "application/xml", "application/json;q=0", "text/html, application/*;q=0", "image/png, */*;q=0"])(
    "Accept: %s answers 406 not_acceptable on a send, and stores nothing",
    async (accept) => {
      const before = await countRows(t.database, "messages");
      expectError(await post(t.app, "/api/messages/sms", smsSend(), { accept }), 406, "not_acceptable");
      expect(await countRows(t.database, "messages")).toBe(before);
    },
  );

  test.each(["/api/conversations", "/api/conversations/1/messages", "/api/messages/1", "/api/provider/mock/config"])(
    "Accept: text/plain on GET %s answers 406",
    async (path) => {
      expectError(await get(t.app, path, { accept: "text/plain" }), 406, "not_acceptable");
    },
  );
});

describe("Content-Type", () => {
  test.each(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "Application/Json;Charset=UTF-8"])(
    "Content-Type: %s is accepted",
    async (contentType) => {
      const res = await post(t.app, "/api/messages/sms", JSON.stringify(smsSend()), { "content-type": contentType });
      expect(res.status).toBe(202);
    },
  );

  for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "text/json"]) {
    test(`Content-Type: ${contentType} answers 415 unsupported_media_type`, async () => {
      const res = await post(t.app, "/api/messages/sms", JSON.stringify(smsSend()), { "content-type": contentType });
      expectError(res, 415, "unsupported_media_type");
    });
  }

  test("a body without Content-Type answers 415", async () => {
    const res = await t.app.handle(
      new Request("http://localhost/api/messages/sms", { method: "POST", body: new TextEncoder().encode(JSON.stringify(smsSend())) }),
    );
    expect(res.status).toBe(415);
    expect(((await res.json()) as { code: string }).code).toBe("unsupported_media_type");
  });

  test("a form-encoded body answers 415 on a webhook and on the mock config too", async () => {
    const form = { "content-type": "application/x-www-form-urlencoded" };
    expectError(await post(t.app, "/api/webhooks/sms", "from=1&to=2", form), 415, "unsupported_media_type");
    expectError(await request(t.app, "PUT", "/api/provider/mock/config", { body: "error_pct=1", headers: form }), 415, "unsupported_media_type");
  });

  test.each(["text/plain", "application/x-www-form-urlencoded", "text/json", "none"])(
    "a body declared %s is refused with a 4xx error envelope and stores nothing",
    async (contentType) => {
      const before = await countRows(t.database, "messages");
      const headers: Record<string, string> = contentType === "none" ? {} : { "content-type": contentType };
      const res = await post(t.app, "/api/messages/sms", JSON.stringify(smsSend()), headers);
      expect([400, 415]).toContain(res.status);
      expect(res.json.request_id).toBe(res.headers.get("x-request-id")!);
      expect(await countRows(t.database, "messages")).toBe(before);
    },
  );
});

describe("body limit (API_MAX_BODY_BYTES)", () => {
  const oversized = () => JSON.stringify(smsSend({ body: "x".repeat(MAX_BODY) }));

  test("a body over the limit with Content-Length answers 413 payload_too_large", async () => {
    const raw = oversized();
    const res = await post(t.app, "/api/messages/sms", raw, { "content-type": "application/json", "content-length": String(raw.length) });
    expectError(res, 413, "payload_too_large");
  });

  const chunkedOversized = () => {
    const chunk = new TextEncoder().encode(" ".repeat(512));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 8) return controller.close();
        sent++;
        controller.enqueue(chunk);
      },
    });
    const req = new Request("http://localhost/api/messages/sms", { method: "POST", headers: { "content-type": "application/json" }, body: stream });
    expect(req.headers.get("content-length")).toBeNull();
    return req;
  };

  test("a chunked body (no Content-Length) over the limit answers 413 payload_too_large", async () => {
    const res = await t.app.handle(chunkedOversized());
    expect(res.status).toBe(413);
    expect(((await res.json()) as { code: string }).code).toBe("payload_too_large");
  });

  test("a chunked body over the limit is refused with a 4xx envelope, never stored, never a 5xx", async () => {
    const before = await countRows(t.database, "messages");
    const res = await t.app.handle(chunkedOversized());
    expect([400, 413]).toContain(res.status);
    expect(((await res.json()) as { request_id: string }).request_id).toBe(res.headers.get("x-request-id")!);
    expect(await countRows(t.database, "messages")).toBe(before);
  });

  test("a chunked body under the limit is read and accepted", async () => {
    const bytes = new TextEncoder().encode(JSON.stringify(smsSend()));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 20));
        controller.enqueue(bytes.slice(20));
        controller.close();
      },
    });
    const res = await t.app.handle(
      new Request("http://localhost/api/messages/sms", { method: "POST", headers: { "content-type": "application/json" }, body: stream }),
    );
    expect(res.status).toBe(202);
  });

  test("a declared Content-Length over the limit is refused before the body is read, on every write route", async () => {
    for (const path of ["/api/messages/email", "/api/webhooks/sms", "/api/webhooks/email", "/api/provider/mock/inbound"]) {
      const raw = oversized();
      const res = await post(t.app, path, raw, { "content-type": "application/json", "content-length": String(raw.length) });
      expectError(res, 413, "payload_too_large");
    }
  });

  test("a body just under the limit is not refused for its size", async () => {
    const body = smsSend({ body: "y" });
    const padding = MAX_BODY - JSON.stringify(body).length - 20;
    const raw = JSON.stringify({ ...body, body: "y".repeat(Math.min(1600, padding)) });
    expect(raw.length).toBeLessThanOrEqual(MAX_BODY);
    expect((await post(t.app, "/api/messages/sms", raw, { "content-type": "application/json" })).status).toBe(202);
  });
});

describe("malformed bodies", () => {
  test.each(['{"from": ', "{from: 1}", "{'a': 1}", '{"a":1}}', "\u00ff\u00fe", "nul"])("body %p answers 400 invalid_json", async (raw) => {
    expectError(await post(t.app, "/api/messages/sms", raw, { "content-type": "application/json" }), 400, "invalid_json");
  });

  test("bytes that are not UTF-8 answer 400 invalid_json", async () => {
    const res = await t.app.handle(
      new Request("http://localhost/api/messages/sms", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
      }),
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_json");
  });
});

describe("routes", () => {
  test.each(["/api/nope", "/api/messages/1/nope", "/api/conversations/1/nope", "/", "/api/provider/mock"])("GET %s answers 404 not_found", async (path) => {
    expectError(await get(t.app, path), 404, "not_found");
  });

  test.each([
    ["GET", "/api/messages/sms", "POST"],
    ["GET", "/api/messages/email", "POST"],
    ["PUT", "/api/messages/sms", "POST"],
    ["POST", "/api/conversations", "GET"],
    ["DELETE", "/api/conversations/1/messages", "GET"],
    ["GET", "/api/webhooks/sms", "POST"],
    ["DELETE", "/api/provider/mock/config", "GET"],
    ["GET", "/api/provider/mock/inbound", "POST"],
  ])("%s %s answers 405 method_not_allowed with Allow listing %s", async (method, path, allowed) => {
    const res = await request(t.app, method, path);
    expectError(res, 405, "method_not_allowed");
    const allow = res.headers.get("allow")!.split(/,\s*/);
    expect(allow).toContain(allowed);
    expect(allow).not.toContain(method);
  });

  test("the mock config route allows both GET and PUT", async () => {
    const res = await request(t.app, "POST", "/api/provider/mock/config", { body: {} });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")!.split(/,\s*/)).toEqual(expect.arrayContaining(["GET", "PUT"]));
  });
});

describe("API response headers", () => {
  test.each([
    ["a 202 send", () => post(t.app, "/api/messages/sms", smsSend())],
    ["a 200 read", () => get(t.app, "/api/conversations")],
    ["a 400", () => post(t.app, "/api/messages/sms", { from: 1 })],
    ["a 404", () => get(t.app, "/api/messages/999999")],
  ])("%s carries the security headers and Cache-Control: no-store", async (_case, call) => {
    const res = await call();
    expectApiSecurityHeaders(res.headers);
  });

  test("X-Request-Id is echoed on a send and in its error envelope", async () => {
    const ok = await post(t.app, "/api/messages/sms", smsSend(), { "x-request-id": "client-req-42" });
    expect(ok.headers.get("x-request-id")).toBe("client-req-42");
    const bad = await post(t.app, "/api/messages/sms", { from: 1 }, { "x-request-id": "client-req-43" });
    expect(bad.headers.get("x-request-id")).toBe("client-req-43");
    expect(bad.json.request_id).toBe("client-req-43");
  });

  test("every error response is JSON with code, message and request_id, and nothing else but details", async () => {
    const responses = await Promise.all([
      get(t.app, "/api/nope"),
      request(t.app, "GET", "/api/messages/sms"),
      post(t.app, "/api/messages/sms", "{", { "content-type": "application/json" }),
      post(t.app, "/api/messages/sms", "{}", { "content-type": "text/plain" }),
      post(t.app, "/api/messages/sms", smsSend(), { accept: "text/plain" }),
      post(t.app, "/api/messages/sms", {}),
    ]);
    for (const res of responses) {
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(res.headers.get("content-type")).toStartWith("application/json");
      expect(Object.keys(res.json).sort()).toEqual(res.json.details ? ["code", "details", "message", "request_id"] : ["code", "message", "request_id"]);
      expect(res.json.code).toMatch(/^[a-z]+(_[a-z]+)*$/);
      expect(res.json.message.length).toBeGreaterThan(0);
    }
  });
});
