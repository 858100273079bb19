import type { Command } from "commander";
import type { Logger } from "../../src/observability/logger.ts";
import type { RunningServer } from "../../src/server.ts";
import { fail } from "../exit.ts";
import { configFor, withDatabaseFlags } from "../options.ts";

/**
 * `messaging serve`: the API and the delivery workers, until SIGTERM or SIGINT. The server and the logger are
 * imported when the command runs, so the other commands, `--help` and `--version` never load them.
 */
export function serveCommand(program: Command): void {
  withDatabaseFlags(program.command("serve").description("run the HTTP API (and, as they arrive, the delivery workers)"))
    .option("--port <port>", "TCP port (env PORT, default 8080)")
    .option("--host <address>", "listen address (env HOST, default 0.0.0.0)")
    .option("--log-level <level>", "log level (env LOG_LEVEL, default info)")
    .option("--migrate", "apply pending migrations to DATABASE_URL before starting")
    .action(async (_options, command: Command) => {
      let logger: Logger | undefined;
      const { createLogger, flushLogger } = await import("../../src/observability/logger.ts");
      try {
        const config = await configFor(command);
        const { startServer } = await import("../../src/server.ts");
        const log = createLogger({ level: config.logLevel });
        logger = log;
        // Listen for signals before starting: a SIGTERM during a slow first start (initdb, migrations)
        // must not kill the process halfway through writing the embedded database.
        let server: RunningServer | undefined;
        let signalledDuringStart: string | undefined;
        const onSignal = (signal: string) => {
          if (server) stopAndExit(server, signal, log, flushLogger);
          else {
            signalledDuringStart ??= signal;
            log.info({ signal }, "signal received while starting; stopping once started");
          }
        };
        process.once("SIGTERM", () => onSignal("SIGTERM"));
        process.once("SIGINT", () => onSignal("SIGINT"));

        server = await startServer(config, log);
        // Supervisors (and the end-to-end tests) read the port from the "messaging listening" line: write it now.
        await flushLogger(log);
        if (signalledDuringStart) stopAndExit(server, signalledDuringStart, log, flushLogger);
      } catch (err) {
        if (logger) await flushLogger(logger);
        fail(err);
      }
    });
}

/** Extra time past the server's own stop bound before the process exits without waiting any longer. */
const HARD_EXIT_MARGIN_MS = 2000;

function stopAndExit(server: RunningServer, signal: string, log: Logger, flushLogger: (log: Logger) => Promise<void>): void {
  // The last word: whatever hangs (a close that never settles, a bug), the process exits and the supervisor can
  // restart it. Not unref'd: this timer must be able to fire even when nothing else keeps the loop alive.
  const hardBoundMs = server.stopBoundMs + HARD_EXIT_MARGIN_MS;
  setTimeout(async () => {
    log.error({ bound_ms: hardBoundMs }, "shutdown did not finish in time; exiting without waiting further");
    await flushLogger(log);
    process.exit(1);
  }, hardBoundMs);
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
}
