import { createApp } from "./app.ts";
import { assertProvidersReady, type ServiceConfig } from "./providers/config.ts";
import { isDatabaseUnavailable, rootCauseMessage } from "./db/availability.ts";
import { configuredTimeouts, type DatabaseHandle, EMBEDDED_BACKSTOP_POLL_MS, openDatabase } from "./db/client.ts";
import { scheduleReceiptPurge } from "./db/write-fence.ts";
import { assertUnmodified, isCurrent, migrateUp, migrationStatus } from "./db/migrate.ts";
import { type RunningCredentials, startCredentials } from "./credentials-wiring.ts";
import { createDelivery } from "./delivery-wiring.ts";
import { createEventWorkers } from "./events-wiring.ts";
import { probeStorage, StorageHealth, storageAwareLogger } from "./db/storage-health.ts";
import { createFirstApiKey } from "./security/api-keys.ts";
import { inboundWebhookAccess } from "./security/inbound-access.ts";
import { credentialsProblem } from "./providers/readiness.ts";
import { scheduleIdempotencyPurge } from "./modules/idempotency/service.ts";
import { scheduleProviderEventPurge } from "./modules/provider-webhooks/service.ts";
import { retentionReporter, scheduleRetention } from "./modules/retention/service.ts";
import { Promoter } from "./modules/scheduling/service.ts";
import type { Logger } from "./observability/logger.ts";
import { type Limits, localLimits } from "./limits/limiter.ts";
import { sharedLimits } from "./limits/shared.ts";
import { createMetrics, type Metrics } from "./observability/metrics.ts";
import { OperatorError } from "./operator-error.ts";
import { VERSION } from "./version.ts";

/**
 * Bun's own body limit, set out of reach so that every body reaches our reader, which enforces the configured
 * limit with the contract's 413 envelope (a declared length before reading, a chunked one as it arrives).
 * Bun's own 413 has no body, no security headers and no X-Request-Id.
 */
export const RUNTIME_MAX_REQUEST_BODY_SIZE = Number.MAX_SAFE_INTEGER;

/** A reason `serve` refuses to start that the operator can act on (printed as one line, exit code 2). */
export class StartupError extends OperatorError {
  override name = "StartupError";
}

export interface RunningServer {
  url: URL;
  port: number;
  database: DatabaseHandle;
  /**
   * Turns /readyz to 503, stops accepting, lets in-flight requests finish until the shutdown timeout, then stops
   * waiting for request bodies still arriving, and closes the database (bounded). Safe to call twice.
   */
  stop(reason?: string): Promise<void>;
  /** The longest `stop` is designed to take; past it something hung (`serve` then exits anyway). */
  stopBoundMs: number;
}

/** After the shutdown timeout, how long requests whose body wait was cut short get to write their answer. */
const ANSWER_GRACE_MS = 1000;
/** How long closing the database may take (postgres.js ends its pool within 5 s; PGlite checkpoints). */
const DATABASE_CLOSE_BOUND_MS = 8000;

/**
 * Starts the whole service: database (embedded ones are migrated here; PostgreSQL must be migrated already
 * unless `autoMigrate`), the HTTP API and the delivery workers.
 */
export async function startServer(config: ServiceConfig, logger: Logger): Promise<RunningServer> {
  // Before the database: a provider whose API the egress guard refuses is the operator's to fix, in one line.
  assertProvidersReady(config);
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
    timeouts: configuredTimeouts(config),
  });
  const metrics = createMetrics({ version: VERSION });
  let credentials: RunningCredentials;
  try {
    await prepareSchema(database, config.autoMigrate, logger);
    credentials = await startCredentials(config, database, metrics, logger);
    // A provider without its credential is refused here, once the store is read, naming the `creds set` to run.
    const missing = credentialsProblem(config.providers, credentials.store, credentials.hasMasterKey);
    if (missing !== undefined) {
      await credentials.stop();
      throw new StartupError(missing);
    }
  } catch (err) {
    await database.close().catch(() => {});
    if (isDatabaseUnavailable(err)) {
      throw new StartupError(`cannot reach ${database.describe}: ${rootCauseMessage(err)}`);
    }
    throw err;
  }

  await announceAuth(config, database, logger);
  // One view of the database's space for the requests and the background loops: a full disk is one warning per
  // episode, not a line from every poll of every loop (db/storage-health.ts).
  const storage = new StorageHealth({ logger, metrics, probe: () => probeStorage(database.sql) });
  const background = storageAwareLogger(logger, storage);
  const stopPurge = scheduleIdempotencyPurge(database.sql, (result) => {
    if ("error" in result) background.warn({ err: result.error }, "idempotency key purge failed");
    else if (result.deleted > 0) {
      metrics.idempotencyKeysPurged.inc(result.deleted);
      logger.info({ deleted: result.deleted }, "expired idempotency keys purged");
    }
  });
  const stopReceiptPurge = scheduleReceiptPurge(database.sql, (result) => {
    if ("error" in result) background.warn({ err: result.error }, "write receipt purge failed");
  });
  const stopEventPurge = scheduleProviderEventPurge(database.sql, (result) => {
    if ("error" in result) background.warn({ err: result.error }, "provider event id purge failed");
    else metrics.providerEventsPurged.inc(result.deleted);
  });
  const stopRetention =
    config.retentionDays === 0
      ? () => {}
      : scheduleRetention(database.sql, config.retentionDays, retentionReporter(metrics, background, config.retentionDays));
  const draining = new AbortController();
  const closing = new AbortController();
  const limits = await startLimits(config, metrics, logger);
  const delivery = createDelivery(config, database, metrics, background, credentials.store, config.redisUrl ? limits.limiter : undefined);
  const promoter = new Promoter(
    { sql: database.sql, metrics, logger: background, onQueued: () => delivery.wake.committed() },
    {
      pollMs: config.schedulePollMs,
      batchSize: config.scheduleBatchSize,
      // One process owns the embedded database: every scheduled send commits here and wakes the promoter itself.
      ...(database.kind === "embedded" ? { idlePollMs: EMBEDDED_BACKSTOP_POLL_MS } : {}),
    },
  );
  const app = createApp({
    config,
    database,
    logger,
    metrics,
    version: VERSION,
    credentials: credentials.store,
    limits,
    events: { keys: credentials.keys, credentialsChanged: () => credentials.store.poll() },
    onOutboundCommitted: () => delivery.wake.committed(),
    onScheduled: (sendAt) => promoter.scheduled(sendAt),
    shutdown: { draining: draining.signal, closing: closing.signal },
    storage,
  });
  app.listen({
    port: config.port,
    // Seconds Bun keeps a kept-alive connection that sends nothing (Elysia's default, stated here). Measured on
    // Bun 1.3.14: one that never completes its request head is closed after about 10 s whatever this says; a
    // body that trickles in is bounded by MESSAGING_REQUEST_BODY_TIMEOUT_MS (http/body-deadline.ts).
    idleTimeout: 30,
    hostname: config.host,
    maxRequestBodySize: RUNTIME_MAX_REQUEST_BODY_SIZE,
  });
  const server = app.server!;
  await delivery.start();
  promoter.start();
  const eventWorkers = createEventWorkers(config, database, metrics, background, credentials.store);
  eventWorkers.start();
  const url = new URL(`http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${server.port}`);
  logger.info({ port: server.port, host: config.host, database: database.describe, version: VERSION }, "messaging listening");
  if (config.providers.length === 0) {
    logger.warn("no providers are configured: every channel uses the built-in mock and nothing leaves this machine");
  }
  const inbound = inboundWebhookAccess(config);
  if (inbound.openToAnyone) logger.warn(inbound.description);

  let stopping: Promise<void> | undefined;
  const stop = (reason = "stop") =>
    (stopping ??= (async () => {
      logger.info({ reason, timeout_ms: config.shutdownTimeoutMs }, "shutting down: no new connections, finishing in-flight requests");
      draining.abort();
      const promoterStopped = promoter.stop().catch((err: unknown) => logger.warn({ err }, "the scheduled-send promoter did not stop cleanly"));
      // The workers stop claiming now and finish their calls while the requests drain.
      const deliveryStopped = delivery.stop(config.shutdownTimeoutMs, ANSWER_GRACE_MS).catch((err: unknown) => {
        logger.warn({ err }, "the delivery workers did not stop cleanly; their jobs are retried when the leases run out");
      });
      // Bun resolves this once no request is running; idle keep-alive connections do not hold it (they close
      // with the process). Bun 1.3.14 ignores a later stop(true) once stop(false) was called, so closing the
      // connections of slow requests is done by `closing` (see http/body-deadline.ts), not by the server.
      const drained = server.stop(false).then(() => true);
      if (!(await settlesWithin(drained, config.shutdownTimeoutMs))) {
        logger.warn({ pending_requests: server.pendingRequests }, "in-flight requests did not finish in time; closing their connections");
        closing.abort();
        if (!(await settlesWithin(drained, ANSWER_GRACE_MS))) {
          logger.warn({ pending_requests: server.pendingRequests }, "requests still running; closing the database under them");
        }
      }
      await deliveryStopped;
      await promoterStopped;
      await eventWorkers.stop(Math.min(config.shutdownTimeoutMs, 2000)).catch((err: unknown) => {
        logger.warn({ err }, "the event workers did not stop cleanly; their deliveries are retried when the leases run out");
      });
      stopPurge();
      stopReceiptPurge();
      stopEventPurge();
      stopRetention();
      storage.stop();
      await credentials.stop();
      limits.close();
      await afterResponseHooks();
      if (!(await settlesWithin(database.close().then(() => true), DATABASE_CLOSE_BOUND_MS))) {
        throw new Error(`the database did not close within ${DATABASE_CLOSE_BOUND_MS} ms`);
      }
      logger.info("stopped");
    })());
  const stopBoundMs = config.shutdownTimeoutMs + ANSWER_GRACE_MS + 500 + DATABASE_CLOSE_BOUND_MS;

  return { url, port: server.port!, database, stop, stopBoundMs };
}

/**
 * The rate limits: in Redis, shared by every instance, when `MESSAGING_REDIS_URL` is set (connected before the
 * service listens; a Redis that does not answer leaves the limits in process until it does); in process otherwise.
 */
async function startLimits(config: ServiceConfig, metrics: Metrics, logger: Logger): Promise<Limits> {
  if (!config.redisUrl) return localLimits(config);
  const shared = sharedLimits({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    required: config.redisRequired,
    authFailureLimit: config.authFailureLimit,
    authFailureWindowSecs: config.authFailureWindowSecs,
    logger,
    metrics,
  });
  await shared.start();
  return shared;
}

/**
 * With auth on and no key ever made, makes the first one so that the first run stays one command, and prints
 * it once to stderr (never to the log). With auth off, says so in the log.
 */
async function announceAuth(config: ServiceConfig, database: DatabaseHandle, logger: Logger): Promise<void> {
  if (config.auth === "off") {
    logger.warn("MESSAGING_AUTH=off: /api routes accept requests without an API key; use this only for local development");
    return;
  }
  const first = await createFirstApiKey(database.sql);
  if (!first) return;
  logger.info({ key_id: first.id, prefix: first.prefix }, "no API key existed: created the first one (printed once on stderr)");
  process.stderr.write(
    [
      "",
      "messaging: no API key existed, so one was created with every scope. It is shown this once and never again:",
      "",
      `  ${first.key}`,
      "",
      "Send it as `Authorization: Bearer <key>`. Make more with `messaging keys create --name NAME`,",
      "list them with `messaging keys list` and revoke one with `messaging keys revoke ID`.",
      "",
      "",
    ].join("\n"),
  );
}

async function prepareSchema(database: DatabaseHandle, autoMigrate: boolean, logger: Logger): Promise<void> {
  if (database.kind === "embedded" || autoMigrate) {
    const applied = await migrateUp(database.db);
    if (applied.length > 0) logger.info({ applied }, "migrations applied");
    return;
  }
  const status = await migrationStatus(database.db);
  assertUnmodified(status);
  if (!isCurrent(status)) {
    const pending = status.filter((s) => s.state === "pending").map((s) => s.tag);
    throw new StartupError(
      `the database has ${pending.length} pending migration(s) (${pending.join(", ")}); run \`messaging migrate up\` or pass --migrate`,
    );
  }
}

/**
 * Elysia runs a request's after-response hooks (its log line, its metrics) in a setImmediate, which a stop can
 * overtake: the last request answered before SIGTERM would lose its log line. Immediates run in order, so once
 * one queued now has run, those queued before it have too (bounded wait).
 */
function afterResponseHooks(): Promise<void> {
  return new Promise((resolve) => {
    const deadline = setTimeout(resolve, 500);
    setImmediate(() => {
      clearTimeout(deadline);
      resolve();
    });
  });
}

/** True when `promise` resolves within `ms`, false when the time runs out first (the promise is left running). */
async function settlesWithin(promise: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
