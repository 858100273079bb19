import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

const HTTP_LABELS = ["method", "route", "status"] as const;
type HttpLabel = (typeof HTTP_LABELS)[number];
const HTTP_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** What one (method, route, status) has answered so far. */
interface RequestTally {
  labels: Record<HttpLabel, string>;
  count: number;
  sum: number;
  /** Requests per bucket, not cumulative; past the last bound they count only in `count` (`+Inf`). */
  perBucket: number[];
}

/**
 * The per-request metrics, counted in place. prom-client turns the labels object of every `inc` and `observe`
 * into a string key and validates it, which on /healthz cost more than all other metric work; here a request
 * finds its tally through three map lookups, building no string, and the two metrics read the tallies
 * when scraped.
 */
class RequestTallies {
  private readonly byMethod = new Map<string, Map<string, Map<number, RequestTally>>>();
  /** In the order first seen, the order prom-client lists series in. */
  private readonly seen: RequestTally[] = [];

  constructor(private readonly bounds: readonly number[]) {}

  record(method: string, route: string, status: number, seconds: number): void {
    let byRoute = this.byMethod.get(method);
    if (!byRoute) this.byMethod.set(method, (byRoute = new Map()));
    let byStatus = byRoute.get(route);
    if (!byStatus) byRoute.set(route, (byStatus = new Map()));
    let tally = byStatus.get(status);
    if (!tally) {
      tally = { labels: { method, route, status: String(status) }, count: 0, sum: 0, perBucket: this.bounds.map(() => 0) };
      byStatus.set(status, tally);
      this.seen.push(tally);
    }
    tally.count += 1;
    tally.sum += seconds;
    for (let i = 0; i < this.bounds.length; i++) {
      if (seconds <= this.bounds[i]!) {
        tally.perBucket[i]! += 1;
        break;
      }
    }
  }

  all(): readonly RequestTally[] {
    return this.seen;
  }
}

/** `messaging_http_requests_total`, read from the tallies (prom-client's own `inc` is not used). */
class TalliedRequestCounter extends Counter<HttpLabel> {
  constructor(
    private readonly tallies: RequestTallies,
    config: ConstructorParameters<typeof Counter<HttpLabel>>[0],
  ) {
    super(config);
  }

  override async get() {
    const metric = await super.get();
    metric.values = this.tallies.all().map((t) => ({ labels: t.labels, value: t.count }));
    return metric;
  }
}

/**
 * `messaging_http_request_duration_seconds`, read from the tallies. prom-client's registry renders a histogram
 * from `getForPromString` (and its `get` splays what that returns), so that is where the tallies go in, in the
 * shape prom-client's own histogram gives: a test compares the two outputs for the same requests.
 */
class TalliedRequestHistogram extends Histogram<HttpLabel> {
  constructor(
    private readonly tallies: RequestTallies,
    private readonly config: ConstructorParameters<typeof Histogram<HttpLabel>>[0] & { name: string; help: string; buckets: number[] },
  ) {
    super(config);
  }

  async getForPromString() {
    const { name, help, buckets } = this.config;
    const bucket = `${name}_bucket`;
    const values: { labels: Record<string, string | number>; sharedLabels: Record<string, string>; value: number; metricName: string }[] = [];
    for (const t of this.tallies.all()) {
      let cumulative = 0;
      buckets.forEach((le, i) => {
        cumulative += t.perBucket[i]!;
        values.push({ labels: { le }, sharedLabels: t.labels, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { le: "+Inf" }, sharedLabels: t.labels, value: t.count, metricName: bucket });
      values.push({ labels: {}, sharedLabels: t.labels, value: t.sum, metricName: `${name}_sum` });
      values.push({ labels: {}, sharedLabels: t.labels, value: t.count, metricName: `${name}_count` });
    }
    return { name, help, type: "histogram", values, aggregator: "sum" };
  }
}

/** The service's metrics on one registry per app, so tests and several apps in one process never collide. */
export function createMetrics(info: { version: string }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const buildInfo = new Gauge({
    name: "messaging_build_info",
    help: "Always 1; labels describe the running build",
    labelNames: ["version", "runtime"],
    registers: [registry],
  });
  buildInfo.set({ version: info.version, runtime: `bun ${Bun.version}` }, 1);
  const requests = new RequestTallies(HTTP_DURATION_BUCKETS);

  return {
    registry,
    /** Records one answered request in `httpRequests` and `httpDuration` (their only way in). */
    recordRequest: (method: string, route: string, status: number, seconds: number) => requests.record(method, route, status, seconds),
    httpRequests: new TalliedRequestCounter(requests, {
      name: "messaging_http_requests_total",
      help: "HTTP requests answered, by route pattern, method and status",
      labelNames: HTTP_LABELS,
      registers: [registry],
    }),
    httpDuration: new TalliedRequestHistogram(requests, {
      name: "messaging_http_request_duration_seconds",
      help: "Time from request arrival to response, by route pattern, method and status",
      labelNames: HTTP_LABELS,
      buckets: HTTP_DURATION_BUCKETS,
      registers: [registry],
    }),
    messagesAccepted: new Counter({
      name: "messaging_messages_accepted_total",
      help: "Messages committed, by channel and direction",
      labelNames: ["channel", "direction"],
      registers: [registry],
    }),
    idempotentReplays: new Counter({
      name: "messaging_idempotent_replays_total",
      help: "Requests answered from a stored Idempotency-Key response",
      registers: [registry],
    }),
    webhookDuplicates: new Counter({
      name: "messaging_webhook_duplicates_total",
      help: "Inbound messages a provider delivered again, answered with the first id",
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: "messaging_rate_limited_total",
      help: "Requests refused with 429, by limit (key, ip, webhook, sender)",
      labelNames: ["limit"],
      registers: [registry],
    }),
    redisUp: new Gauge({
      name: "messaging_redis_up",
      help: "1 while the Redis of MESSAGING_REDIS_URL answers (rate limits shared by all instances), 0 while it does not or is not configured",
      registers: [registry],
    }),
    redisLocalDecisions: new Counter({
      name: "messaging_redis_local_decisions_total",
      help: "Rate-limit checks answered in this process because the configured Redis did not answer, by check (key, ip, sender, provider, webhook, auth)",
      labelNames: ["check"],
      registers: [registry],
    }),
    workerProcessed: new Counter({
      name: "messaging_worker_processed_total",
      help: "Outbound messages handed to a provider by the delivery workers",
      registers: [registry],
    }),
    sendBatchSize: new Histogram({
      name: "messaging_send_batch_size",
      help: "Outbound sends written by one statement (group commit); 1 when the service is not busy",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
    coalescedReads: new Counter({
      name: "messaging_coalesced_reads_total",
      help: "List requests answered by a query another identical request of the same moment started, by list",
      labelNames: ["list"],
      registers: [registry],
    }),
    idempotencyKeysPurged: new Counter({
      name: "messaging_idempotency_keys_purged_total",
      help: "Expired Idempotency-Key responses deleted",
      registers: [registry],
    }),
    retentionPurged: new Counter({
      name: "messaging_retention_purged_total",
      help: "Rows deleted by retention (MESSAGING_RETENTION_DAYS), by what: messages or conversations",
      labelNames: ["what"],
      registers: [registry],
    }),
    storageFull: new Gauge({
      name: "messaging_storage_full",
      help: "1 while the database is out of storage space (writes answered 503 until space returns), else 0",
      registers: [registry],
    }),
    storageFullEpisodes: new Counter({
      name: "messaging_storage_full_episodes_total",
      help: "Times the database ran out of storage space (each episode lasts until space returns)",
      registers: [registry],
    }),
    storageFullRefusals: new Counter({
      name: "messaging_storage_full_refusals_total",
      help: "Requests answered 503 because the database was out of storage space",
      registers: [registry],
    }),
    databaseUnavailable: new Counter({
      name: "messaging_database_unavailable_total",
      help: "Requests answered 503 because the database could not be reached",
      registers: [registry],
    }),
    writeOutcomes: new Counter({
      name: "messaging_write_outcome_checks_total",
      help: "Writes whose database connection was lost, by what the lookup found: committed (answered 202), rolled_back (503) or unknown (503 outcome_unknown)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    sendQueueDepth: new Gauge({
      name: "messaging_send_queue_depth",
      help: "Unkeyed sends waiting for a group commit",
      registers: [registry],
    }),
    sendQueueRejected: new Counter({
      name: "messaging_send_queue_rejected_total",
      help: "Sends refused with 503 because the send queue was full",
      registers: [registry],
    }),
    databaseTimeouts: new Counter({
      name: "messaging_database_timeouts_total",
      help: "Requests answered 503 because PostgreSQL did not answer in time, by bound (statement or connect)",
      labelNames: ["kind"],
      registers: [registry],
    }),
    deliveryAttempts: new Counter({
      name: "messaging_delivery_attempts_total",
      help: "Provider calls made by the delivery workers, by provider and outcome (accepted, rate_limited, transient_error, permanent_error)",
      labelNames: ["provider", "outcome"],
      registers: [registry],
    }),
    deliveryDuration: new Histogram({
      name: "messaging_delivery_duration_seconds",
      help: "How long one provider call took, by provider",
      labelNames: ["provider"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    deliveryQueueDepth: new Gauge({
      name: "messaging_delivery_queue_depth",
      help: "Outbound messages not yet in a final state (delivery jobs), sampled by the delivery workers",
      registers: [registry],
    }),
    deliveryOldestDue: new Gauge({
      name: "messaging_delivery_oldest_due_seconds",
      help: "How long the oldest due delivery job has been waiting (0 when none is due), sampled by the delivery workers",
      registers: [registry],
    }),
    deliveryUncertain: new Counter({
      name: "messaging_delivery_uncertain_total",
      help: "Messages taken over from a worker that died before writing their result, retried with the same idempotency key",
      registers: [registry],
    }),
    deliveryResultWriteFailures: new Counter({
      name: "messaging_delivery_result_write_failures_total",
      help: "Writes of delivery results that failed (the database unreachable); the outcomes are kept and written again",
      registers: [registry],
    }),
    deliveryResultsUnwritten: new Counter({
      name: "messaging_delivery_results_unwritten_total",
      help: "Provider outcomes a stopping process could not write; their messages are taken over and counted as uncertain",
      registers: [registry],
    }),
    unmatchableAcceptances: new Counter({
      name: "messaging_delivery_unmatchable_acceptances_total",
      help: "Messages a provider accepted (2xx, so sent and never retried) without a usable message id: their delivery reports cannot be matched",
      labelNames: ["provider"],
      registers: [registry],
    }),
    breakerState: new Gauge({
      name: "messaging_breaker_state",
      help: "Circuit breaker of each provider in this process: 0 closed, 1 half-open (one probe out), 2 open",
      labelNames: ["provider"],
      registers: [registry],
    }),
    breakerTransitions: new Counter({
      name: "messaging_breaker_transitions_total",
      help: "Circuit breaker transitions, by provider and the state entered",
      labelNames: ["provider", "to"],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: "messaging_auth_failures_total",
      help: "Requests refused by API-key authentication, by reason (missing, invalid, scope, throttled)",
      labelNames: ["reason"],
      registers: [registry],
    }),
    messagesStatus: new Counter({
      name: "messaging_messages_status_total",
      help: "Outbound status changes written by this process (delivery and delivery reports), by the status entered",
      labelNames: ["status"],
      registers: [registry],
    }),
    webhookSignatureFailures: new Counter({
      name: "messaging_webhook_signature_failures_total",
      help: "Webhook requests refused with 401 for their signature, by reason (missing, malformed, stale, mismatch)",
      labelNames: ["reason"],
      registers: [registry],
    }),
    providerWebhooks: new Counter({
      name: "messaging_provider_webhooks_total",
      help: "Requests to the Twilio and SendGrid webhook routes, by configured provider, kind and outcome (accepted, duplicate, unmatched, unauthorized, invalid)",
      labelNames: ["provider", "kind", "outcome"],
      registers: [registry],
    }),
    providerEventsPurged: new Counter({
      name: "messaging_provider_events_purged_total",
      help: "Remembered SendGrid event ids deleted once older than their deduplication window",
      registers: [registry],
    }),
    credentialsLoaded: new Gauge({
      name: "messaging_credentials_loaded",
      help: "Stored provider credential versions this process holds, by state: readable, or unreadable (a missing or wrong master key; `messaging check` names them)",
      labelNames: ["state"],
      registers: [registry],
    }),
    credentialReloads: new Counter({
      name: "messaging_credential_reloads_total",
      help: "Loads of the provider credentials (at start, and each time `messaging creds` changed them)",
      registers: [registry],
    }),
    credentialReloadFailures: new Counter({
      name: "messaging_credential_reload_failures_total",
      help: "Polls of the provider credentials that failed (the values loaded before stay in use)",
      registers: [registry],
    }),
    smsSegments: new Counter({
      name: "messaging_sms_segments_total",
      help: "Segments of accepted outbound SMS/MMS bodies (what a carrier bills), by encoding (GSM-7 or UCS-2)",
      labelNames: ["encoding"],
      registers: [registry],
    }),
    optOuts: new Counter({
      name: "messaging_opt_outs_total",
      help: "Opt-out requests recorded, by action (stop: opted out, start: opted back in) and source (inbound: a keyword text, provider: e.g. Twilio 21610)",
      labelNames: ["action", "source"],
      registers: [registry],
    }),
    messagesScheduled: new Gauge({
      name: "messaging_messages_scheduled",
      help: "Scheduled messages waiting for their send_at (all instances), sampled every few seconds by this instance's promoter",
      registers: [registry],
    }),
    scheduledPromoted: new Counter({
      name: "messaging_scheduled_promoted_total",
      help: "Scheduled messages this process took off the schedule when due, by outcome (queued: handed to delivery, failed: the recipient opted out meanwhile)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    scheduleDispatchLag: new Histogram({
      name: "messaging_schedule_dispatch_lag_seconds",
      help: "From a scheduled message's send_at to its first provider call",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    messagesCanceled: new Counter({
      name: "messaging_messages_canceled_total",
      help: "Messages canceled by POST /api/messages/{id}/cancel, by the status they were taken back from (scheduled or queued)",
      labelNames: ["from"],
      registers: [registry],
    }),
    eventsWritten: new Counter({
      name: "messaging_events_written_total",
      help: "Client events written (SPEC §10), by type; counted when the event workers route them, so shortly after their commit",
      labelNames: ["type"],
      registers: [registry],
    }),
    eventDeliveries: new Counter({
      name: "messaging_event_deliveries_total",
      help: "Event POSTs to client endpoints, by outcome (delivered: 2xx, failed: retried later, gone: 410 disabled the endpoint, gave_up: the retry window ran out)",
      labelNames: ["outcome"],
      registers: [registry],
    }),
    eventDeliveryLag: new Histogram({
      name: "messaging_event_delivery_lag_seconds",
      help: "From an event's commit to its endpoint's 2xx",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
    eventPending: new Gauge({
      name: "messaging_event_pending",
      help: "Events routed to an endpoint and not yet delivered, by endpoint id (sampled)",
      labelNames: ["endpoint"],
      registers: [registry],
    }),
    eventOldestPending: new Gauge({
      name: "messaging_event_oldest_pending_seconds",
      help: "Age of the oldest event still to be delivered to an endpoint, by endpoint id (sampled; 0 when none)",
      labelNames: ["endpoint"],
      registers: [registry],
    }),
    eventFeedHeldBack: new Gauge({
      name: "messaging_event_feed_held_back_seconds",
      help: "Age of the oldest committed event not yet in GET /api/events nor routed, because a write transaction of this database that began before it is still running (sampled; 0 when none)",
      registers: [registry],
    }),
    eventEndpointsDisabled: new Gauge({
      name: "messaging_event_endpoints_disabled",
      help: "Event endpoints that are disabled (410 Gone, or every delivery failing too long) and wait for enable",
      registers: [registry],
    }),
    sendsRefused: new Counter({
      name: "messaging_sends_refused_total",
      help: "Sends refused after validation without storing anything, by reason (recipient_opted_out and sender_not_allowed: 422; provider_limit: 400, a limit of every provider of the route)",
      labelNames: ["reason"],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The flat JSON view of the main counters that `GET /metrics` gives with `Accept: application/json`. */
export async function metricsSnapshot(metrics: Metrics): Promise<Record<string, number>> {
  const total = async (c: Counter<string>) => (await c.get()).values.reduce((sum, v) => sum + v.value, 0);
  const byLabel = async (c: Counter<string>, label: string) => {
    const out: Record<string, number> = {};
    for (const v of (await c.get()).values) {
      const key = String(v.labels[label] ?? "unknown");
      out[key] = (out[key] ?? 0) + v.value;
    }
    return out;
  };
  const accepted = await byLabel(metrics.messagesAccepted, "direction");
  return {
    http_requests: await total(metrics.httpRequests),
    messages_accepted: await total(metrics.messagesAccepted),
    messages_accepted_outbound: accepted.outbound ?? 0,
    messages_accepted_inbound: accepted.inbound ?? 0,
    idempotent_replays: await total(metrics.idempotentReplays),
    webhook_duplicates: await total(metrics.webhookDuplicates),
    rate_limited: await total(metrics.rateLimited),
    database_unavailable: await total(metrics.databaseUnavailable),
    worker_processed: await total(metrics.workerProcessed),
  };
}
