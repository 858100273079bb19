import { describe, expect, test } from "bun:test";
import { StartupError, startServer } from "../src/server.ts";
import { captureLogger, testConfig } from "./helpers/app.ts";

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
