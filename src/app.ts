import { Elysia } from "elysia";
import type { Config } from "./config/index.ts";
import type { DatabaseHandle } from "./db/client.ts";
import { TokenBuckets } from "./domain/token-bucket.ts";
import { apiDocs, DOCS_PATH } from "./http/api-docs.ts";
import { auth, routeRequirement } from "./http/auth.ts";
import { errorHandler } from "./http/error-handler.ts";
import { jsonBody } from "./http/json-body.ts";
import { ipRateLimit, peerAddress } from "./http/rate-limit.ts";
import { requestContext } from "./http/request-context.ts";
import { securityHeaders } from "./http/security-headers.ts";
import { webhookSignature } from "./http/webhook-signature.ts";
import { conversationsModule } from "./modules/conversations/index.ts";
import { conversationsDeps } from "./modules/conversations/service.ts";
import { healthModule } from "./modules/health/index.ts";
import { ReadinessProbe } from "./modules/health/service.ts";
import { messagesModule } from "./modules/messages/index.ts";
import { messagesDeps } from "./modules/messages/service.ts";
import { providerMockModule } from "./modules/provider-mock/index.ts";
import { mockDefaults } from "./modules/provider-mock/service.ts";
import { webhooksModule } from "./modules/webhooks/index.ts";
import type { Logger } from "./observability/logger.ts";
import type { Metrics } from "./observability/metrics.ts";
import { isLoopbackHost } from "./security/address-class.ts";
import { ApiKeyVerifier } from "./security/api-keys.ts";
import { AuthFailures } from "./security/auth-failures.ts";
import { clientAddress, TrustedProxies } from "./security/client-address.ts";

export interface AppDeps {
  config: Config;
  database: DatabaseHandle;
  logger: Logger;
  metrics: Metrics;
  version: string;
  /** Told when outbound messages commit (wakes the delivery workers, here and in other instances). */
  onOutboundCommitted?: () => void;
  /** Set by `startServer`: `draining` when shutdown begins, `closing` when its timeout has run out. */
  shutdown?: { draining: AbortSignal; closing: AbortSignal };
}

const isApi = (path: string) => path.startsWith("/api/");
const isWebhook = (path: string) => path.startsWith("/api/webhooks/");
/** Where inbound messages enter: the signed routes of SPEC §8 (a trailing slash routes to the same handler). */
const isSignedInbound = (path: string) => isWebhook(path) || path.replace(/\/+$/, "") === "/api/provider/mock/inbound";

/** The whole HTTP API without a listener: `serve` and the tests both build it here. */
export function createApp(deps: AppDeps) {
  const { config, database, logger, metrics } = deps;
  const hsts = config.hsts ?? (config.publicUrl?.startsWith("https://") ?? false);
  const skipAccept = (path: string) => path === "/metrics" || path.startsWith(DOCS_PATH) || path === "/openapi.json";
  const limits = { maxAttachments: config.maxAttachments };
  const trustedProxies = new TrustedProxies(config.trustedProxies);

  const messages = messagesDeps(database.db, database.sql, {
    fence: database.fence,
    metrics,
    senderBuckets: new TokenBuckets(config.rateLimitPerSenderPerMin),
    snippetLength: config.snippetLength,
    idempotencyTtlHours: config.idempotencyTtlHours,
    ...(deps.onOutboundCommitted ? { onOutboundCommitted: deps.onOutboundCommitted } : {}),
    // Embedded PGlite has one connection, so one batch at a time; PostgreSQL gets a few in parallel.
    batch: { maxInFlight: database.kind === "embedded" ? 1 : Math.max(1, Math.floor(config.databasePoolSize / 4)), maxBatch: 256, maxQueued: config.sendQueueLimit },
  });
  // The error handler needs the final route table (405 vs 404); it is known once the app is assembled.
  let routeTable = (): { method: string; path: string }[] => [];
  const app = new Elysia({ name: "messaging" })
    .use(requestContext({ logger, metrics, headers: securityHeaders({ enabled: config.securityHeadersEnabled, hsts }), docsPath: DOCS_PATH }))
    .use(errorHandler({ logger, metrics, routes: () => routeTable() }))
    .use(ipRateLimit({ perMinute: config.rateLimitPerIpPerMin, trustedProxies: config.trustedProxies, metrics, applies: isApi }))
    .use(
      auth({
        mode: config.auth,
        verifier: new ApiKeyVerifier(database.sql, { onTouchError: (err) => logger.warn({ err }, "could not record an API key's last use") }),
        requirement: routeRequirement(config.opsAuth === "on" || (config.opsAuth === "auto" && !isLoopbackHost(config.host)), DOCS_PATH),
        clientOf: (request, server) => clientAddress(peerAddress(request, server), request.headers.get("x-forwarded-for"), trustedProxies),
        failures: new AuthFailures({ limit: config.authFailureLimit, windowSecs: config.authFailureWindowSecs }),
        onFailure: (reason) => metrics.authFailures.inc({ reason }),
      }),
    )
    .use(webhookSignature({ secrets: config.webhookSecrets, toleranceSecs: config.webhookToleranceSecs, protects: isSignedInbound, metrics }))
    .use(jsonBody({ maxBodyBytes: config.maxBodyBytes, bodyTimeoutMs: config.requestBodyTimeoutMs, closing: deps.shutdown?.closing, skipAccept }))
    .use(apiDocs({ version: deps.version }))
    .use(healthModule({ healthPath: config.healthPath, readiness: new ReadinessProbe(database.db, database.describe), draining: deps.shutdown?.draining, metrics }))
    .use(messagesModule(messages, limits))
    .use(webhooksModule(messages, limits))
    .use(conversationsModule(conversationsDeps(messages)))
    .use(providerMockModule({ db: database.db, sql: database.sql, metrics, messages, defaults: mockDefaults(config) }, limits));
  routeTable = () => app.routes;
  return app;
}

export type App = ReturnType<typeof createApp>;
