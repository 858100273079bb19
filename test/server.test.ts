import { describe, expect, test } from "bun:test";
import { openPostgres } from "../src/db/client.ts";
import { migrateUp } from "../src/db/migrate.ts";
import { StartupError, startServer } from "../src/server.ts";
import { captureLogger, testConfig } from "./helpers/app.ts";
import { createTestDatabase } from "./helpers/database.ts";

describe("startServer", () => {
  test("an unreachable PostgreSQL is refused with one operator-facing line naming the cause", async () => {
    const { logger } = captureLogger("silent");
    const config = testConfig({ databaseUrl: "postgres://postgres@127.0.0.1:1/none", port: 0 });
    const error = await startServer(config, logger).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(StartupError);
    expect((error as Error).message).toContain("cannot reach PostgreSQL at 127.0.0.1:1/none");
    expect((error as Error).message).toContain("ECONNREFUSED");
    expect((error as Error).message).not.toContain("\n");
  });
});

describe("startServer maintenance", () => {
  test("expired idempotency keys are purged at start and counted in /metrics", async () => {
    const pg = await createTestDatabase();
    const setup = openPostgres(pg.url, 1);
    try {
      await migrateUp(setup.db);
      await setup.sql.query(
        `INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body, expires_at)
         VALUES ('s', 'expired', 'h', 202, '{}'::jsonb, now() - interval '1 hour')`,
      );
      const { logger } = captureLogger("silent");
      const server = await startServer(testConfig({ databaseUrl: pg.url, port: 0, host: "127.0.0.1" }), logger);
      try {
        let purged = "";
        for (let i = 0; i < 50 && !purged.includes("messaging_idempotency_keys_purged_total 1"); i++) {
          await Bun.sleep(20);
          purged = await (await fetch(`${server.url}metrics`)).text();
        }
        expect(purged).toContain("messaging_idempotency_keys_purged_total 1");
        expect(await setup.sql.query("SELECT 1 FROM idempotency_keys")).toEqual([]);
      } finally {
        await server.stop("test");
      }
    } finally {
      await setup.close();
      await pg.drop();
    }
  });
});
