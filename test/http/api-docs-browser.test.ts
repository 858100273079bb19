import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { ensureBinary, startServe, type ServeProcess } from "../helpers/binary.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

// The API reference as a reader sees it: `messaging serve` (the binary, on PostgreSQL), /docs in Debian's
// headless Chromium with the network closed, every route of the OpenAPI document on the page, nothing fetched
// from outside loopback, no CSP violation or script error, and none of the buttons that need Scalar's cloud.
const CHROMIUM = "/usr/bin/chromium";
const CLOUD_BUTTONS = ["Ask AI", "Generate MCP", "Developer Tools", "Configure", "Share", "Deploy"];

interface Operation {
  method: string;
  path: string;
  title: string;
}

if (!existsSync(CHROMIUM)) {
  test.skip(`GET /docs in headless Chromium (skipped: ${CHROMIUM} is absent; \`apt-get install chromium\`, as .ci/run does)`, () => {});
} else {
  describe("GET /docs in headless Chromium", () => {
    /** Kept after the run: it holds the screenshot. */
    let dir: string;
    let database: TestDatabase;
    let serve: ServeProcess;
    let browser: Browser;
    let page: Page;
    let operations: Operation[];
    /** Requests the page tried to make beyond the server under test (aborted). */
    const outside: string[] = [];
    /** Console errors (a CSP violation is one), uncaught exceptions, and violations reported by the page. */
    const errors: string[] = [];
    let csp: string | undefined;

    beforeAll(async () => {
      await ensureBinary();
      dir = mkdtempSync(join(tmpdir(), "messaging-docs-browser-"));
      database = await createTestDatabase();
      serve = await startServe({ cwd: dir, args: ["--migrate"], env: { DATABASE_URL: database.url } });
      operations = documentedOperations((await (await fetch(`${serve.url}/openapi.json`)).json()) as OpenApiPaths);

      const root = process.getuid?.() === 0;
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: root ? ["--no-sandbox"] : [] });
      const context = await browser.newContext({ viewport: { width: 1400, height: 1000 }, serviceWorkers: "block" });
      await context.route("**/*", (route) => {
        const url = route.request().url();
        if (URL.parse(url)?.origin === serve.url) return route.continue();
        outside.push(url);
        return route.abort("blockedbyclient");
      });
      page = await context.newPage();
      await page.addInitScript({
        content: `document.addEventListener("securitypolicyviolation", (e) =>
          console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber + ":" + e.columnNumber));`,
      });
      page.on("pageerror", (err) => errors.push(`uncaught: ${err.message}`));
      page.on("console", (message) => {
        if (message.type() !== "error") return;
        // The browser asks for /favicon.ico by itself, for any page; the service has none to give.
        if (message.location().url === `${serve.url}/favicon.ico`) return;
        errors.push(`console: ${message.text()} (${message.location().url})`);
      });

      const response = await page.goto(`${serve.url}/docs`);
      csp = response?.headers()["content-security-policy"];
      await renderAll(page, operations, serve.url);
    }, 120_000);

    afterAll(async () => {
      await browser?.close();
      await serve?.stop();
      await database?.drop();
    });

    test("the page is served under the docs Content-Security-Policy (scripts from 'self' only)", () => {
      expect(csp).toBeString();
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("default-src 'none'");
    });

    test("the OpenAPI document has operations to look for", () => {
      expect(operations.length).toBeGreaterThanOrEqual(11);
      expect(operations).toContainEqual(expect.objectContaining({ method: "POST", path: "/api/messages/sms" }));
    });

    test("every operation of the OpenAPI document is rendered, with a curl example that names the server", async () => {
      const missing = await missingOperations(page, operations, serve.url);
      expect(missing).toEqual([]);
    });

    test("no request left loopback", () => {
      expect(outside).toEqual([]);
    });

    test("no CSP violation, console error or uncaught exception", () => {
      expect(errors).toEqual([]);
    });

    test.each(CLOUD_BUTTONS)("the cloud-only %p button is not shown", async (label) => {
      const visible = await Promise.all((await page.getByText(label, { exact: true }).all()).map((match) => match.isVisible()));
      expect(visible.filter(Boolean)).toEqual([]);
    });

    test("the reference itself is interactive: the search and the example client menu are there", async () => {
      expect(await page.getByRole("button", { name: /search/i }).first().isVisible()).toBe(true);
      expect(await page.getByText("Shell Curl").first().isVisible()).toBe(true);
    });

    test("the page offers a Bearer token field; a key pasted there is sent by the examples of the routes that need one, not the open ones", async () => {
      const field = page.getByPlaceholder("Token").first();
      expect(await field.isVisible()).toBe(true);
      expect(await page.getByText("Bearer Token").first().isVisible()).toBe(true);
      await field.fill("msg_abcdefghij_pasted-in-the-docs-page");
      await page.waitForTimeout(300);
      const sections = await page.locator("section").evaluateAll((elements) => elements.map((element) => (element as unknown as { innerText: string }).innerText.replace(/\s+/g, " ")));
      const example = (path: string) => sections.find((text) => text.includes(`curl ${serve.url}${path} `)) ?? "";
      expect(example("/api/messages/sms")).toContain("--header 'Authorization: Bearer msg_abcdefghij_pasted-in-the-docs-page'");
      expect(example("/api/conversations")).toContain("Authorization: Bearer msg_abcdefghij_pasted-in-the-docs-page");
      expect(example("/healthz")).not.toBe("");
      expect(example("/healthz")).not.toContain("Authorization: Bearer");
    });

    test("a screenshot of the top of the page is written for a reader to look at", async () => {
      const screenshot = join(dir, "docs.png");
      await page.evaluate("window.scrollTo(0, 0)");
      await page.screenshot({ path: screenshot });
      console.log(`docs screenshot: ${screenshot}`);
      const bytes = await Bun.file(screenshot).bytes();
      expect([...bytes.subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]); // PNG signature
    });
  });
}

type OpenApiPaths = { paths: Record<string, Record<string, { summary?: string }>> };

/** Every operation in the document, titled as the reference titles it (its summary, else its path). */
function documentedOperations(document: OpenApiPaths): Operation[] {
  const methods = new Set(["get", "put", "post", "delete", "patch", "head", "options", "trace"]);
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => methods.has(method))
      .map(([method, operation]) => ({ method: method.toUpperCase(), path, title: operation.summary ?? path })),
  );
}

/**
 * Operations with no section on the page titled as the operation, showing its path, whose curl example
 * starts with the server's origin.
 */
async function missingOperations(page: Page, operations: Operation[], origin: string): Promise<Operation[]> {
  const sections = await page.locator("section").evaluateAll((elements) =>
    elements.map((element) => ({ title: element.querySelector("h1, h2, h3, h4")?.textContent ?? "", text: element.innerText as string })),
  );
  const rendered = sections.map((s) => ({ title: s.title.replace(/[\s\u200b]+/g, " ").trim(), text: s.text.replace(/\s+/g, " ") }));
  return operations.filter(
    (op) =>
      !rendered.some(
        (s) =>
          s.title === op.title &&
          s.text.includes(op.path) &&
          (s.text.includes(`curl ${origin}${op.path}`) ||
            s.text.includes(`curl '${origin}${op.path}'`) ||
            // a required query parameter (GET /api/messages?status=) is written into the example's URL
            s.text.includes(`curl '${origin}${op.path}?`)),
      ),
  );
}

/** Scrolls down the page until every operation has rendered (the reference renders sections as they come into view). */
async function renderAll(page: Page, operations: Operation[], origin: string): Promise<void> {
  await page.locator("section").first().waitFor({ timeout: 30_000 });
  const deadline = Date.now() + 30_000;
  while ((await missingOperations(page, operations, origin)).length > 0 && Date.now() < deadline) {
    await page.evaluate("window.scrollBy(0, window.innerHeight)");
    await page.waitForTimeout(100);
  }
}
