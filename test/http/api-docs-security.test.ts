/**
 * /openapi.json says how to authenticate (issue 21): the Bearer scheme in components.securitySchemes, every
 * operation marked with it (naming the scope in its description) or explicitly open, as an independent validator
 * sees it: Redocly's linter (`@redocly/openapi-core`, its recommended rules and `security-defined` as an error),
 * which reports an operation without security and a requirement naming an undeclared scheme.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createConfig, lintFromString } from "@redocly/openapi-core";
import { routeRequirement } from "../../src/http/auth.ts";
import { isProviderWebhook } from "../../src/modules/provider-webhooks/index.ts";
import { createApiKey } from "../../src/security/api-keys.ts";
import { buildTestApp, request, type TestApp } from "../helpers/app.ts";

type Operation = { description?: string; security?: Record<string, string[]>[] };
type Document = { components: { securitySchemes?: Record<string, { type: string; scheme: string }> }; paths: Record<string, Record<string, Operation>>; info: { description: string } };
type Problem = { ruleId: string; severity: string; message: string; location: { pointer?: string }[] };

let t: TestApp;
let doc: Document;
beforeAll(async () => {
  t = await buildTestApp({ config: { auth: "on", host: "127.0.0.1" } });
  doc = (await request(t.app, "GET", "/openapi.json")).json as Document;
});
afterAll(() => t.close());

const METHODS = new Set(["get", "put", "post", "delete", "patch", "head", "options", "trace"]);
const operations = (d: Document) =>
  Object.entries(d.paths).flatMap(([path, item]) => Object.entries(item).filter(([m]) => METHODS.has(m)).map(([method, op]) => ({ path, method, op })));

async function lint(document: unknown): Promise<Problem[]> {
  const config = await createConfig({ extends: ["recommended"], rules: { "security-defined": "error" } } as never);
  return (await lintFromString({ source: JSON.stringify(document), absoluteRef: "openapi.json", config } as never)) as Problem[];
}
const errors = (problems: Problem[]) => problems.filter((p) => p.severity === "error").map((p) => `${p.ruleId}: ${p.message} at ${p.location[0]?.pointer}`);

describe("the security the document declares", () => {
  test("one Bearer scheme, and the reader is told how keys are made and sent", () => {
    expect(doc.components.securitySchemes).toEqual({ apiKey: expect.objectContaining({ type: "http", scheme: "bearer" }) });
    expect(doc.info.description).toContain("Authorization: Bearer <key>");
    expect(doc.info.description).toContain("messaging keys create");
  });

  test("each operation needs the key exactly when the server does, and its description names the scope", () => {
    const requirement = routeRequirement(false, "/docs", isProviderWebhook);
    const ops = operations(doc);
    expect(ops.length).toBeGreaterThanOrEqual(15);
    for (const { path, method, op } of ops) {
      const needed = requirement(method.toUpperCase(), path);
      if (needed === null) {
        expect({ path, method, security: op.security }).toEqual({ path, method, security: [] });
        expect(op.description).toStartWith("**Authentication:** none");
      } else {
        expect({ path, method, security: op.security }).toEqual({ path, method, security: [{ apiKey: [] }] });
        expect(op.description).toStartWith(`**Authentication:** ${needed === "any" ? "any valid API key" : `an API key with the \`${needed}\` scope`}`);
      }
    }
    const byPath = Object.fromEntries(ops.map(({ path, method, op }) => [`${method} ${path}`, op]));
    expect(byPath["post /api/messages/sms"]!.description).toContain("`send` scope");
    expect(byPath["get /api/conversations"]!.description).toContain("`read` scope");
    expect(byPath["delete /api/conversations/{id}"]!.description).toContain("`admin` scope");
    expect(byPath["post /api/webhooks/sms"]!.description).toContain("`inbound` scope");
    expect(byPath["post /api/webhooks/twilio/{provider}/status"]!.security).toEqual([]);
  });

  test("what the server answers agrees: a protected operation refuses a request without the key, an open one does not ask for it", async () => {
    const key = (await createApiKey(t.database.sql, { name: "docs", scopes: ["read"] })).key;
    expect((await request(t.app, "GET", "/api/conversations")).status).toBe(401);
    expect((await request(t.app, "GET", "/api/conversations", { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect((await request(t.app, "POST", "/api/webhooks/sms", { body: {} })).status).toBe(401);
    expect((await request(t.app, "GET", "/healthz")).status).toBe(200);
  });

  test("with the operations endpoints behind a key (not on loopback), /metrics is marked too", async () => {
    const exposed = await buildTestApp({ database: t.database, config: { auth: "on", host: "0.0.0.0" } });
    const key = (await createApiKey(t.database.sql, { name: "ops", scopes: ["read"] })).key;
    const d = (await request(exposed.app, "GET", "/openapi.json", { headers: { authorization: `Bearer ${key}` } })).json as Document;
    expect(d.paths["/metrics"]!.get!.security).toEqual([{ apiKey: [] }]);
    expect(d.paths["/healthz"]!.get!.security).toEqual([]);
  });
});

describe("an independent validator (Redocly's linter) sees the requirement", () => {
  test("the document has no error under the recommended rules with security-defined as an error", async () => {
    expect(errors(await lint(doc))).toEqual([]);
  });

  test("the linter does look: without the declared scheme every protected operation is reported, without the marks every operation", async () => {
    const protectedOps = operations(doc).filter(({ op }) => op.security?.length).length;
    const noScheme = { ...doc, components: { ...doc.components, securitySchemes: {} } };
    const undeclared = errors(await lint(noScheme)).filter((e) => e.includes("There is no `apiKey` security scheme defined"));
    expect(undeclared).toHaveLength(protectedOps);

    const unmarked = structuredClone(doc);
    for (const item of Object.values(unmarked.paths)) for (const [m, op] of Object.entries(item)) if (METHODS.has(m)) delete op.security;
    const missing = errors(await lint(unmarked)).filter((e) => e.includes("Every operation should have security defined"));
    expect(missing).toHaveLength(operations(doc).length);
  });
});
