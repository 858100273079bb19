/**
 * Puts the event workers together for `serve` (SPEC §10): their settings, the egress guard every event POST goes
 * through (the same allowlist as providers, no redirects followed, the event timeout), and the credential store
 * that holds the endpoints' signing secrets.
 */
import type { Config } from "./config/index.ts";
import { type DatabaseHandle, EMBEDDED_BACKSTOP_POLL_MS } from "./db/client.ts";
import { EventWorkers } from "./events/worker.ts";
import type { Logger } from "./observability/logger.ts";
import type { Metrics } from "./observability/metrics.ts";
import type { CredentialLookup } from "./security/credential-lookup.ts";
import { eventEgress } from "./events/egress.ts";
import { VERSION } from "./version.ts";

/** A receiver's answer is read only for its status; a larger one is cut off (and counts as a failure). */
const MAX_EVENT_RESPONSE_BYTES = 64 * 1024;

/**
 * The event workers of this process. They always route new events to the endpoints (the feed, GET /api/events,
 * needs no worker); with MESSAGING_EVENT_WORKERS off they POST nothing.
 */
export function createEventWorkers(config: Config, database: DatabaseHandle, metrics: Metrics, logger: Logger, credentials: CredentialLookup): EventWorkers {
  const egress = eventEgress(config, {
    timeoutMs: config.eventTimeoutMs,
    connectTimeoutMs: Math.min(5000, config.eventTimeoutMs),
    maxRedirects: 0,
    maxResponseBytes: MAX_EVENT_RESPONSE_BYTES,
  });
  return new EventWorkers(
    // On the embedded database every commit is this process's own: the router sleeps until a statement of another
    // caller wakes it (its own statements run unreported), with a long poll as the safety net.
    database.activity
      ? { sql: database.activity.quietSql, activity: database.activity, credentials, egress, metrics, logger }
      : { sql: database.sql, credentials, egress, metrics, logger },
    {
      deliver: config.eventWorkers,
      concurrency: config.eventConcurrency,
      timeoutMs: config.eventTimeoutMs,
      pollMs: config.eventPollMs,
      ...(database.activity ? { idleMaxMs: EMBEDDED_BACKSTOP_POLL_MS } : {}),
      retryForMs: config.eventRetryHours * 3_600_000,
      disableAfterMs: config.eventDisableAfterHours * 3_600_000,
      backoff: { baseMs: config.eventBackoffBaseMs, capMs: config.eventBackoffCapMs },
      breaker: { failureThreshold: config.breakerErrorThreshold, openMs: config.breakerOpenSecs * 1000 },
      retentionDays: config.eventRetentionDays,
      snippetLength: config.snippetLength,
      userAgent: `messaging/${VERSION}`,
    },
  );
}
