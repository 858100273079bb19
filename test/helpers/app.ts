/**
 * The HTTP app under test, without a listener: build it over a fresh database and call it with `request`.
 *
 *   const t = await buildTestApp();                          // fresh PostgreSQL database, migrated (a template copy)
 *   const res = await request(t.app, "GET", "/healthz");     // { status, headers, json, text }
 *   await t.close();                                         // closes and drops the database
 */
import { expect } from "bun:test";
import { Writable } from "node:stream";
import { type App, createApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config/index.ts";
import { type ServiceConfig as Config, withProviders } from "../../src/providers/config.ts";
import { type DatabaseHandle, openPostgres } from "../../src/db/client.ts";
import { migrateUp } from "../../src/db/migrate.ts";
import type { Limits } from "../../src/limits/limiter.ts";
import { createLogger, type Logger } from "../../src/observability/logger.ts";
import { type CredentialLookup, fixedCredentials } from "../../src/security/credential-lookup.ts";
import { createMetrics, type Metrics } from "../../src/observability/metrics.ts";
import { VERSION } from "../../src/version.ts";
import { createEmbeddedTestDatabase, createMigratedTestDatabase, createTestDatabase } from "./database.ts";

/**
 * A complete, validated Config as `serve` would get it from an empty environment, with logs silenced and
 * API-key auth off (the auth tests turn it on with `{ auth: "on" }`). Overrides are typed settings
 * (`{ maxBodyBytes: 2048 }`) and go through the same schema as flags do.
 */
export function testConfig(overrides: Partial<Config> = {}): Config {
  // `providers` is no flat setting (it comes from the config file), so it is laid over the loaded config as given.
  const { providers, ...flags } = overrides;
  const config = withProviders(loadConfig({ env: { LOG_LEVEL: "silent", MESSAGING_AUTH: "off" }, flags: flags as Record<string, unknown> }));
  return providers === undefined ? config : { ...config, providers };
}

/** A logger whose JSON lines are kept in memory; `lines()` parses them. */
export function captureLogger(level = "info"): { logger: Logger; lines(): Record<string, unknown>[]; raw(): string } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const logger = createLogger({ level, destination });
  const raw = () => chunks.join("");
  const lines = () =>
    raw()
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, raw };
}

export interface TestAppOptions {
  /**
   * `"postgres"` (default): a fresh database on TEST_DATABASE_URL. `"embedded"`: PGlite in a temporary
   * directory (seconds to start; share one per file). Or an open handle, which `close()` leaves open.
   */
  database?: "postgres" | "embedded" | DatabaseHandle;
  /** Apply the embedded migrations first (default true). */
  migrate?: boolean;
  config?: Partial<Config>;
  /** Default: a silent logger. Pass `captureLogger().logger` to read the lines. */
  logger?: Logger;
  /** Provider credentials the app reads (default: none stored). */
  credentials?: CredentialLookup;
  /** Where the rate limits live (default: this process, as `serve` without MESSAGING_REDIS_URL). */
  limits?: Limits;
}

export interface TestApp {
  app: App;
  database: DatabaseHandle;
  metrics: Metrics;
  config: Config;
  /** Closes the database and removes what the helper created (database or directory). Safe to call twice. */
  close(): Promise<void>;
}

/** Builds the app with `createApp` exactly as `serve` does, over the chosen database. */
export async function buildTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const config = testConfig(options.config);
  const migrate = options.migrate ?? true;
  const { database, dispose, migrated } = await openTestDatabase(options.database ?? "postgres", migrate);
  try {
    if (migrate && !migrated) await migrateUp(database.db);
  } catch (err) {
    await dispose();
    throw err;
  }
  const logger = options.logger ?? createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, done) => done() }) });
  const metrics = createMetrics({ version: VERSION });
  const credentials = options.credentials ?? fixedCredentials({});
  const app = createApp({ config, database, logger, metrics, version: VERSION, credentials, ...(options.limits && { limits: options.limits }) });
  let closed: Promise<void> | undefined;
  return { app, database, metrics, config, close: () => (closed ??= dispose()) };
}

/** `migrated`: the database comes with the migrations applied (a copy of a migrated template). */
async function openTestDatabase(
  choice: "postgres" | "embedded" | DatabaseHandle,
  migrate: boolean,
): Promise<{ database: DatabaseHandle; dispose(): Promise<void>; migrated: boolean }> {
  if (choice === "embedded") {
    const embedded = await createEmbeddedTestDatabase({ migrated: migrate });
    return { database: embedded.handle, dispose: embedded.remove, migrated: migrate };
  }
  if (choice === "postgres") {
    const pg = migrate ? await createMigratedTestDatabase() : await createTestDatabase();
    const database = openPostgres(pg.url, 5);
    return {
      database,
      dispose: async () => {
        await database.close().catch(() => {});
        await pg.drop();
      },
      migrated: migrate,
    };
  }
  return { database: choice, dispose: async () => {}, migrated: false };
}

/**
 * Resolves once Elysia has run its after-response hooks (the request log line and the request metrics),
 * which it schedules with setImmediate after the response is handed back.
 */
export const afterResponse = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface TestResponse {
  status: number;
  headers: Headers;
  /** The parsed body when the response is JSON, else undefined. */
  json: any;
  text: string;
}

/**
 * Calls the app like a client would. An object body is sent as JSON with `Content-Type: application/json`
 * (unless headers say otherwise); a string body is sent as is.
 * The URL's host is `localhost`: Elysia's path parsing misreads hosts shorter than that.
 */
export async function request(
  app: { handle(request: Request): Promise<Response> | Response },
  method: string,
  path: string,
  init: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<TestResponse> {
  const headers = new Headers(init.headers);
  let body: string | undefined;
  if (typeof init.body === "string") body = init.body;
  else if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
  }
  const response = await app.handle(new Request(`http://localhost${path}`, { method, headers, body }));
  const text = await response.text();
  let json: unknown;
  if (/^application\/(.+\+)?json/i.test(response.headers.get("content-type") ?? "")) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: response.status, headers: response.headers, json, text };
}

/** The security headers of SPEC §8 every API response carries (with the default settings: no HSTS, no banner). */
export function expectApiSecurityHeaders(headers: Headers): void {
  expect(headers.get("x-content-type-options")).toBe("nosniff");
  expect(headers.get("x-frame-options")).toBe("DENY");
  expect(headers.get("referrer-policy")).toBe("no-referrer");
  expect(headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
  expect(headers.get("cache-control")).toBe("no-store");
  expect(headers.has("x-powered-by")).toBe(false);
}
