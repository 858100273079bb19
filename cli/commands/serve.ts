import type { Command } from "commander";
import { createLogger, flushLogger } from "../../src/observability/logger.ts";
import { startServer } from "../../src/server.ts";
import { fail } from "../exit.ts";
import { configFor, withDatabaseFlags } from "../options.ts";

/** `messaging serve`: the API and the delivery workers, until SIGTERM or SIGINT. */
export function serveCommand(program: Command): void {
  withDatabaseFlags(program.command("serve").description("run the HTTP API (and, as they arrive, the delivery workers)"))
    .option("--port <port>", "TCP port (env PORT, default 8080)")
    .option("--host <address>", "listen address (env HOST, default 0.0.0.0)")
    .option("--log-level <level>", "log level (env LOG_LEVEL, default info)")
    .option("--migrate", "apply pending migrations to DATABASE_URL before starting")
    .action(async (_options, command: Command) => {
      let logger: ReturnType<typeof createLogger> | undefined;
      try {
        const config = configFor(command);
        const log = createLogger({ level: config.logLevel });
        logger = log;
        const server = await startServer(config, log);
        // Supervisors (and the end-to-end tests) read the port from the "messaging listening" line: write it now.
        await flushLogger(log);
        const shutdown = (signal: string) => {
          server.stop(signal).then(
            async () => {
              await flushLogger(log);
              process.exit(0);
            },
            async (err) => {
              log.error({ err }, "shutdown failed");
              await flushLogger(log);
              process.exit(1);
            },
          );
        };
        process.once("SIGTERM", () => shutdown("SIGTERM"));
        process.once("SIGINT", () => shutdown("SIGINT"));
      } catch (err) {
        if (logger) await flushLogger(logger);
        fail(err);
      }
    });
}
