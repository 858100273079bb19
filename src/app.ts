import { Elysia } from "elysia";
import type { ServiceConfig } from "./providers/config.ts";
import { registryConfig, routeCheck } from "./providers/registry.ts";
import type { DatabaseHandle } from "./db/client.ts";
import { probeStorage, StorageHealth } from "./db/storage-health.ts";
import { apiDocs, DOCS_PATH } from "./http/api-docs.ts";
import { admission } from "./http/admission.ts";
import { auth, authenticatedByKey, type RequestServer, routeRequirement } from "./http/auth.ts";
import { errorHandler } from "./http/error-handler.ts";
import { jsonBody } from "./http/json-body.ts";
import { peerAddress, requestRateLimit } from "./http/rate-limit.ts";
import { type Limits, localLimits } from "./limits/limiter.ts";
import { requestContext } from "./http/request-context.ts";
import { securityHeaders } from "./http/security-headers.ts";
import { webhookSignature } from "./http/webhook-signature.ts";
import { conversationsModule } from "./modules/conversations/index.ts";
import { conversationsDeps } from "./modules/conversations/service.ts";
import { eventEgress } from "./events/egress.ts";
import { eventsModule } from "./modules/events/index.ts";
import { healthModule } from "./modules/health/index.ts";
import { ReadinessProbe } from "./modules/health/service.ts";
import { messagesModule } from "./modules/messages/index.ts";
import { schedulingModule } from "./modules/scheduling/index.ts";
import { messagesDeps } from "./modules/messages/service.ts";
import { optOutsModule } from "./modules/opt-outs/index.ts";
import { providerMockModule } from "./modules/provider-mock/index.ts";
import { isProviderWebhook, providerWebhooksModule } from "./modules/provider-webhooks/index.ts";
import { mockDefaults } from "./modules/provider-mock/service.ts";
import { webhooksModule } from "./modules/webhooks/index.ts";
import type { Logger } from "./observability/logger.ts";
import type { Metrics } from "./observability/metrics.ts";
import { isLoopbackHost } from "./security/address-class.ts";
import { ApiKeyVerifier } from "./security/api-keys.ts";
import { clientAddress, TrustedProxies } from "./security/client-address.ts";
import type { CredentialLookup } from "./security/credential-lookup.ts";
import type { MasterKey } from "./security/keyring.ts";

export interface AppDeps {
  config: ServiceConfig;
  database: DatabaseHandle;
  logger: Logger;
  metrics: Metrics;
  version: string;
  /** Provider credentials (the encrypted store under `serve`): what webhook routes verify signatures with. */
  credentials: CredentialLookup;
  /**
   * What the event endpoint routes store secrets with: the credential store's master keys (none: endpoints cannot be
   * registered) and a way to make this process's store read a new secret at once.
   */
  events?: { keys: readonly MasterKey[]; credentialsChanged?: () => Promise<void> };
  /** Told when outbound messages commit (wakes the delivery workers, here and in other instances). */
  onOutboundCommitted?: () => void;
  /** Where the rate limits live (`serve`: shared through Redis when configured); default: this process. */
  limits?: Limits;
  /** Told when a scheduled send commits (sets this instance's promoter timer for its `send_at`). */
  onScheduled?: (sendAt: Date) => void;
  /** Set by `startServer`: `draining` when shutdown begins, `closing` when its timeout has run out. */
  shutdown?: { draining: AbortSignal; closing: AbortSignal };
  /** Whether the database is out of space (`serve` shares it with the background loops); made here when absent. */
  storage?: StorageHealth;
}

const isApi = (path: string) => path.startsWith("/api/");
const isWebhook = (path: string) => path.startsWith("/api/webhooks/");
/** The generic inbound webhooks (/api/webhooks/sms|email); the Twilio and SendGrid ones carry their provider's own proof. */
const isGenericWebhook = (path: string) => isWebhook(path) && !isProviderWebhook(path);
/** POST actions named by their path, without a body. */
const isBodilessAction = (path: string) => /^\/api\/event-endpoints\/[^/]+\/(rotate-secret|enable)\/?$/.test(path);
/**
 * Where inbound messages enter and a configured webhook secret must sign them (SPEC §8; a trailing slash routes
 * to the same handler): the mock's injection always, and the generic webhooks unless an API key with the
 * `inbound` scope authenticated the request instead (auth.ts).
 */
const isSignedInbound = (path: string, request: Request) =>
  (isGenericWebhook(path) && !authenticatedByKey(request)) || path.replace(/\/+$/, "") === "/api/provider/mock/inbound";

/** `/api/webhooks/twilio/sms-main/status` → `twilio/sms-main` when that provider is configured; otherwise null. */
function webhookProvider(providers: readonly { kind: string; name: string }[]) {
  const configured = new Set(providers.map((p) => `${p.kind}/${p.name}`));
  return (path: string): string | null => {
    if (!isProviderWebhook(path)) return null;
    const [kind, name] = path.slice("/api/webhooks/".length).split("/");
    const id = `${kind}/${name}`;
    return configured.has(id) ? id : null;
  };
}
/** `POST /api/messages/{id}/cancel` names its target in the path and takes no body. */
const isCancel = (path: string) => /^\/api\/messages\/[^/]+\/cancel\/?$/.test(path);

/** The whole HTTP API without a listener: `serve` and the tests both build it here. */
export function createApp(deps: AppDeps) {
  const { config, database, logger, metrics } = deps;
  const storage = deps.storage ?? new StorageHealth({ logger, metrics, probe: () => probeStorage(database.sql) });
  const hsts = config.hsts ?? (config.publicUrl?.startsWith("https://") ?? false);
  // The providers' webhooks answer what their provider expects (TwiML, or nothing), whatever their Accept says.
  const skipAccept = (path: string) => path === "/metrics" || path.startsWith(DOCS_PATH) || path === "/openapi.json" || isProviderWebhook(path);
  const bodyLimits = { maxBodyBytes: config.maxBodyBytes, bodyTimeoutMs: config.requestBodyTimeoutMs, closing: deps.shutdown?.closing };
  const limits = { maxAttachments: config.maxAttachments, scheduleMaxDays: config.scheduleMaxDays };
  const trustedProxies = new TrustedProxies(config.trustedProxies);
  const rateLimits = deps.limits ?? localLimits(config);
  const requirement = routeRequirement(config.opsAuth === "on" || (config.opsAuth === "auto" && !isLoopbackHost(config.host)), DOCS_PATH, isProviderWebhook);
  const rateLimit = requestRateLimit({
    limiter: rateLimits.limiter,
    perKeyPerMinute: config.rateLimitPerKeyPerMin,
    perIpPerMinute: config.rateLimitPerIpPerMin,
    trustedProxies: config.trustedProxies,
    metrics,
    applies: isApi,
    authenticates: (request, path) => config.auth === "on" && requirement(request.method, path) !== null && request.headers.has("authorization"),
    providerWebhook: webhookProvider(config.providers),
  });

  const messages = messagesDeps(database.db, database.sql, {
    fence: database.fence,
    metrics,
    limiter: rateLimits.limiter,
    senderPerMinute: config.rateLimitPerSenderPerMin,
    snippetLength: config.snippetLength,
    idempotencyTtlHours: config.idempotencyTtlHours,
    ...(deps.onOutboundCommitted ? { onOutboundCommitted: deps.onOutboundCommitted } : {}),
    ...(deps.onScheduled ? { onScheduled: deps.onScheduled } : {}),
    // What the route's providers can carry (their senders, their limits), checked before a send is stored.
    routeCheck: routeCheck(registryConfig({ routes: config.deliveryRoutes, timeoutMs: config.providerTimeoutMs, providers: config.providers })),
    // Embedded PGlite has one connection, so one batch at a time. PostgreSQL gets a few in parallel, but a second
    // batch only for a queue of 64 (a quarter of a statement): under 50 clients, one batch at a time carried ~50
    // sends per statement and cost PostgreSQL 0.12 s of CPU per 1,000 sends instead of 0.20 s at ~7 per statement.
    batch: {
      maxInFlight: database.kind === "embedded" ? 1 : Math.max(1, Math.floor(config.databasePoolSize / 4)),
      parallelAfter: 64,
      maxBatch: 256,
      maxQueued: config.sendQueueLimit,
    },
  });
  const conversations = conversationsDeps(messages);
  // The error handler needs the final route table (405 vs 404); it is known once the app is assembled.
  let routeTable = (): { method: string; path: string }[] => [];
  // The listening server (null under app.handle): read through the app rather than Elysia's context, whose
  // `server` getter a hook reading it would make every route define on each request.
  let server = (): (RequestServer & { timeout(request: Request, seconds: number): void }) | null => null;
  const authentication = auth({
    mode: config.auth,
    verifier: new ApiKeyVerifier(database.sql, { onTouchError: (err) => logger.warn({ err }, "could not record an API key's last use") }),
    requirement,
    // With webhook secrets set, a valid X-Messaging-Signature opens the generic webhooks as an inbound key does.
    signatureMayStandIn: (path) => config.webhookSecrets.length > 0 && isGenericWebhook(path),
    clientOf: (request, server) => clientAddress(peerAddress(request, server), request.headers.get("x-forwarded-for"), trustedProxies),
    failures: rateLimits.authFailures,
    failureLimit: config.authFailureLimit,
    onFailure: (reason) => metrics.authFailures.inc({ reason }),
  });
  // Requests that will not authenticate are charged per client (a provider's webhooks per provider) before
  // authentication; authenticated ones per API key after it (http/rate-limit.ts). One hook runs all three.
  const admit = admission(
    (request, state, set) => rateLimit.beforeAuth(request, state, set, server()),
    (request, state) => authentication.admit(request, state, server()),
    (request, state, set) => rateLimit.afterAuth(request, state, set),
  );
  const app = new Elysia({ name: "messaging" })
    .use(requestContext({ logger, metrics, headers: securityHeaders({ enabled: config.securityHeadersEnabled, hsts }), docsPath: DOCS_PATH, admit }))
    .use(errorHandler({ logger, metrics, routes: () => routeTable(), storage }))
    .use(authentication.routeCheck)
    .use(webhookSignature({ secrets: config.webhookSecrets, toleranceSecs: config.webhookToleranceSecs, protects: isSignedInbound, metrics }))
    .use(jsonBody({ ...bodyLimits, skipAccept, ownBody: isProviderWebhook, bodiless: (path) => isCancel(path) || isBodilessAction(path), server: () => server() }))
    .use(apiDocs({ version: deps.version, publicUrl: config.publicUrl, requirement, authOff: config.auth === "off" }))
    .use(healthModule({ healthPath: config.healthPath, readiness: new ReadinessProbe(database.db, database.describe, 2000, () => rateLimits.unready(), storage), draining: deps.shutdown?.draining, metrics }))
    .use(messagesModule(messages, limits, conversations.cursorKey))
    .use(schedulingModule({ sql: database.sql, metrics, messages }))
    .use(webhooksModule(messages, limits))
    .use(conversationsModule(conversations))
    .use(optOutsModule({ sql: database.sql, cursorKey: conversations.cursorKey }))
    .use(
      eventsModule({
        sql: database.sql,
        keys: deps.events?.keys ?? [],
        egress: eventEgress(config),
        snippetLength: config.snippetLength,
        ...(deps.events?.credentialsChanged ? { credentialsChanged: deps.events.credentialsChanged } : {}),
      }),
    )
    .use(providerMockModule({ db: database.db, sql: database.sql, metrics, messages, defaults: mockDefaults(config) }, limits))
    .use(
      providerWebhooksModule(
        {
          providers: config.providers,
          credentials: deps.credentials,
          publicUrl: config.publicUrl,
          sql: database.sql,
          messages,
          metrics,
          logger,
          limits,
          // A provider's id is written within a lease: at least twice the slowest provider timeout plus 5 s
          // (delivery/dispatcher.ts effectiveLeaseMs); a report still unmatched after two is not ours.
          unmatchedRetryMs: 2 * Math.max(config.deliveryLeaseMs, 2 * Math.max(config.providerTimeoutMs, ...config.providers.map((p) => p.timeoutMs ?? 0)) + 5000),
        },
        bodyLimits,
      ),
    );
  routeTable = () => app.routes;
  server = () => app.server;
  return app;
}

export type App = ReturnType<typeof createApp>;
