import { Elysia } from "elysia";
import type { Config } from "./config/index.ts";
import type { DatabaseHandle } from "./db/client.ts";
import { apiDocs, DOCS_PATH } from "./http/api-docs.ts";
import { errorHandler } from "./http/error-handler.ts";
import { jsonBody } from "./http/json-body.ts";
import { requestContext } from "./http/request-context.ts";
import { securityHeaders } from "./http/security-headers.ts";
import { healthModule } from "./modules/health/index.ts";
import { ReadinessProbe } from "./modules/health/service.ts";
import type { Logger } from "./observability/logger.ts";
import type { Metrics } from "./observability/metrics.ts";

export interface AppDeps {
  config: Config;
  database: DatabaseHandle;
  logger: Logger;
  metrics: Metrics;
  version: string;
}

/** The whole HTTP API without a listener: `serve` and the tests both build it here. */
export function createApp(deps: AppDeps) {
  const { config, database, logger, metrics } = deps;
  const hsts = config.hsts ?? (config.publicUrl?.startsWith("https://") ?? false);
  const skipAccept = (path: string) => path === "/metrics" || path.startsWith(DOCS_PATH) || path === "/openapi.json";

  // The error handler needs the final route table (405 vs 404); it is known once the app is assembled.
  let routeTable = (): { method: string; path: string }[] => [];
  const app = new Elysia({ name: "messaging" })
    .use(requestContext({ logger, metrics, headers: securityHeaders({ enabled: config.securityHeadersEnabled, hsts }), docsPath: DOCS_PATH }))
    .use(errorHandler({ logger, metrics, routes: () => routeTable() }))
    .use(jsonBody({ maxBodyBytes: config.maxBodyBytes, skipAccept }))
    .use(apiDocs({ version: deps.version }))
    .use(
      healthModule({
        healthPath: config.healthPath,
        readiness: new ReadinessProbe(database.db, database.describe),
        metrics,
      }),
    );
  routeTable = () => app.routes;
  return app;
}

export type App = ReturnType<typeof createApp>;
