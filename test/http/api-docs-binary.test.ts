import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOCS_CSP } from "../../src/http/security-headers.ts";
import { ensureBinary, startServe, type ServeProcess } from "../helpers/binary.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

// The reference page from the compiled binary, where Elysia can hand a route whose value is a prebuilt Response
// to Bun as a native static route that skips every request hook: the page must still get its security headers
// and its API-key check.
let dir: string;
let database: TestDatabase;
const servers: ServeProcess[] = [];

beforeAll(async () => {
  await ensureBinary();
  dir = mkdtempSync(join(tmpdir(), "messaging-docs-binary-"));
  database = await createTestDatabase();
  const start = (env: Record<string, string>) => startServe({ cwd: dir, args: ["--migrate"], env: { DATABASE_URL: database.url, ...env } });
  servers.push(await start({}));
  servers.push(await start({ MESSAGING_AUTH: "on", MESSAGING_OPS_AUTH: "on" }));
}, 120_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await database?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("GET /docs from `messaging serve`", () => {
  test("carries the docs Content-Security-Policy, the other security headers and a request id", async () => {
    const res = await fetch(`${servers[0]!.url}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toBe(DOCS_CSP);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("x-request-id")).toBeString();
    expect(await res.text()).toContain('src="/docs/assets/scalar.js"');
  });

  test("needs an API key when the operations endpoints do (MESSAGING_OPS_AUTH=on)", async () => {
    for (const path of ["/docs", "/openapi.json"]) {
      const res = await fetch(`${servers[1]!.url}${path}`);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { code: string }).code).toBe("unauthorized");
    }
  });

  test("the document names the server the request reached", async () => {
    const doc = (await (await fetch(`${servers[0]!.url}/openapi.json`)).json()) as { servers: unknown };
    expect(doc.servers).toEqual([{ url: servers[0]!.url }]);
  });
});
