import { z } from "zod";
import { DEFAULT_ROUTES, parseRates, parseRoutes } from "../domain/provider-routes.ts";
import { parseProxyRange } from "../domain/proxy-range.ts";
import { type MasterKey, parseMasterKeys } from "../domain/master-keys.ts";

/**
 * Every setting of `messaging`, in one table: its key in the typed config, the environment variable
 * (the older service's name where one existed, `MESSAGING_*` for new ones), an optional command-line
 * flag, the zod schema that parses the raw text, and a line for the README and `messaging check`.
 * The file key is the snake_case form of `key`.
 */

// Text must be written in decimal digits: Number() would read " " as 0 (PORT=" " silently meant a random
// port), "0x1F" as 31 and "1e3" as 1000.
const integer = (min: number, max: number) => {
  const problem = `must be an integer from ${min} to ${max}`;
  return z.preprocess(
    (v) => (typeof v === "string" && /^\s*[-+]?\d+\s*$/.test(v) ? Number(v.trim()) : v),
    z.number({ error: problem }).refine((n) => Number.isInteger(n) && n >= min && n <= max, problem),
  );
};

const boolean = () =>
  z.preprocess(
    (v) => (typeof v === "string" ? v.trim().toLowerCase() : v),
    z.union([
      z.boolean(),
      z.enum(["true", "1", "yes", "on"]).transform(() => true),
      z.enum(["false", "0", "no", "off"]).transform(() => false),
    ], { error: "must be a boolean (true/false, 1/0, yes/no, on/off)" }),
  );

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.preprocess(
    (v) => (typeof v === "string" ? v.trim().toLowerCase() : v),
    z.enum(values, { error: `must be one of ${values.join(", ")}` }),
  );

const list = () =>
  z.preprocess(
    (v) => (typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean) : v),
    z.array(z.string().min(1), { error: "must be a comma-separated list" }),
  );

/** TCP ports, each 1 to 65535. */
const ports = () =>
  z.preprocess(
    (v) => (typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean).map((s) => (/^\d{1,5}$/.test(s) ? Number(s) : s)) : v),
    z.array(z.number({ error: "must be a comma-separated list of ports" }).int().min(1).max(65535), { error: "must be a comma-separated list of ports" }),
  );

/** Addresses and CIDR ranges; the first unusable entry is named, so the error is one clear line. */
const proxyRanges = () =>
  list().superRefine((entries, ctx) => {
    for (const entry of entries) {
      const range = parseProxyRange(entry);
      if (typeof range === "string") return ctx.addIssue({ code: "custom", message: range });
    }
  });

const redisUrl = () =>
  z
    .string()
    .trim()
    .refine((s) => /^(redis|rediss|valkey|valkeys):\/\//.test(s) && URL.canParse(s), "must be a redis:// or rediss:// URL");

const postgresUrl = () =>
  z
    .string()
    .trim()
    .refine((s) => /^postgres(ql)?:\/\//.test(s) && URL.canParse(s), "must be a postgres:// or postgresql:// URL");

const absoluteUrl = () =>
  z.string().trim().refine((s) => /^https?:\/\//.test(s) && URL.canParse(s), "must be an absolute http or https URL");

/** A text setting read by `parse`, which returns the value or the reason it is unusable. */
const parsed = <T>(parse: (text: string) => T | string) =>
  z.string().transform((text, ctx) => {
    const result = parse(text);
    if (typeof result === "string") {
      ctx.addIssue({ code: "custom", message: result });
      return z.NEVER;
    }
    return result;
  });

/** The master keys as `parseMasterKeys` reads them; a problem names the entry, never its key. */
const masterKeysSetting = (text: string): MasterKey[] | string => {
  const result = parseMasterKeys(text);
  return "problem" in result ? result.problem : result.keys;
};

const path = () => z.string().trim().min(1, "must be a non-empty path");

const routePath = () =>
  z.string().trim().regex(/^\/[A-Za-z0-9._~\-/]*$/, "must be an absolute URL path such as /healthz");

export interface SettingSpec {
  key: string;
  env: string;
  flag?: string;
  schema: z.ZodType;
  default?: unknown;
  description: string;
  secret?: boolean;
}

export const SETTINGS = [
  { key: "port", env: "PORT", flag: "--port", schema: integer(0, 65535), default: 8080, description: "TCP port of the HTTP API (0 picks a free port)" },
  { key: "host", env: "HOST", flag: "--host", schema: z.string().trim().min(1, "must be a host name or address"), default: "0.0.0.0", description: "Address the HTTP API listens on" },
  { key: "healthPath", env: "HEALTH_PATH", schema: routePath(), default: "/healthz", description: "Path of the liveness probe" },
  { key: "logLevel", env: "LOG_LEVEL", flag: "--log-level", schema: oneOf(["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const), default: "info", description: "Minimum level of the JSON log lines on stdout" },
  { key: "databaseUrl", env: "DATABASE_URL", flag: "--database-url", schema: postgresUrl().optional(), description: "PostgreSQL URL; when unset the embedded database in the data directory is used", secret: true },
  { key: "databasePoolSize", env: "MESSAGING_DB_POOL_SIZE", schema: integer(1, 500), default: 20, description: "Connections per process to PostgreSQL" },
  { key: "databaseConnectTimeoutMs", env: "MESSAGING_DB_CONNECT_TIMEOUT_MS", schema: integer(100, 600000), default: 5000, description: "How long opening a PostgreSQL connection may take before the request is answered 503" },
  { key: "databaseStatementTimeoutMs", env: "MESSAGING_DB_STATEMENT_TIMEOUT_MS", schema: integer(0, 3600000), default: 10000, description: "Longest PostgreSQL statement (server statement_timeout); a connection left unanswered a little longer is closed and the request answered 503 (0: no bound)" },
  { key: "databaseIdleInTransactionTimeoutMs", env: "MESSAGING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", schema: integer(0, 3600000), default: 10000, description: "PostgreSQL ends a session idle inside a transaction this long, releasing its locks (0: no bound)" },
  { key: "dataDir", env: "MESSAGING_DATA_DIR", flag: "--data-dir", schema: path(), default: "./messaging-data", description: "Directory of the embedded database (used only without DATABASE_URL)" },
  { key: "auth", env: "MESSAGING_AUTH", schema: oneOf(["on", "off"] as const), default: "on", description: "API-key authentication of /api routes except the Twilio and SendGrid webhooks, which carry their own proof; /api/webhooks/sms and /api/webhooks/email take a key with the inbound scope or a webhook signature (`off` only for local development and the older suite)" },
  { key: "opsAuth", env: "MESSAGING_OPS_AUTH", schema: oneOf(["auto", "on", "off"] as const), default: "auto", description: "Whether /metrics, /docs and /openapi.json need an API key: `auto` needs one unless HOST is a loopback address" },
  { key: "shutdownTimeoutMs", env: "MESSAGING_SHUTDOWN_TIMEOUT_MS", schema: integer(0, 600000), default: 10000, description: "How long a graceful shutdown waits for in-flight requests" },
  { key: "requestBodyTimeoutMs", env: "MESSAGING_REQUEST_BODY_TIMEOUT_MS", schema: integer(100, 600000), default: 10000, description: "How long a request body may take to arrive in full before the answer is 408 and the connection is closed" },
  { key: "publicUrl", env: "MESSAGING_PUBLIC_URL", schema: absoluteUrl().optional(), description: "Public base URL of the service: the server named in /openapi.json, the base of Twilio status callbacks and of the URL Twilio signs (an https URL turns HSTS on by default)" },
  { key: "hsts", env: "MESSAGING_HSTS", schema: boolean().optional(), description: "Send Strict-Transport-Security (default: on when the public URL is https)" },
  { key: "trustedProxies", env: "MESSAGING_TRUSTED_PROXIES", schema: proxyRanges(), default: [], description: "Proxies (addresses or CIDR ranges such as `10.0.0.0/8`, `fd00::/8`) whose X-Forwarded-For is believed: the client is the right-most hop that is not one of them" },
  { key: "idempotencyTtlHours", env: "MESSAGING_IDEMPOTENCY_TTL_HOURS", schema: integer(24, 720), default: 24, description: "How long Idempotency-Key responses are kept" },
  { key: "retentionDays", env: "MESSAGING_RETENTION_DAYS", schema: integer(0, 36500), default: 0, description: "Messages whose timestamp is older than this many days are deleted in the background, with their delivery attempts and jobs; a conversation left empty goes too (0: keep everything)" },
  { key: "scheduleMaxDays", env: "MESSAGING_SCHEDULE_MAX_DAYS", schema: integer(1, 3650), default: 35, description: "How far ahead a send's `send_at` may be (days); further is 400 validation_failed" },
  { key: "schedulePollMs", env: "MESSAGING_SCHEDULE_POLL_MS", schema: integer(10, 60000), default: 500, description: "How often every instance looks for scheduled messages that came due (beside a timer for the nearest one it knows of)" },
  { key: "scheduleBatchSize", env: "MESSAGING_SCHEDULE_BATCH_SIZE", schema: integer(1, 10000), default: 200, description: "Most due scheduled messages one statement hands to the delivery queue; the next batch waits while half a batch of due messages still waits for a worker, so a backlog never stalls fresh sends" },
  { key: "writeOutcomeTimeoutMs", env: "MESSAGING_WRITE_OUTCOME_TIMEOUT_MS", schema: integer(100, 60000), default: 5000, description: "After a lost database connection, how long a write may spend learning whether it committed before answering 503 outcome_unknown" },
  { key: "sendQueueLimit", env: "MESSAGING_SEND_QUEUE_LIMIT", schema: integer(1, 1_000_000), default: 10000, description: "Unkeyed sends waiting for their group commit; past it a send is refused at once with 503 (backpressure)" },
  { key: "autoMigrate", env: "MESSAGING_AUTO_MIGRATE", flag: "--migrate", schema: boolean(), default: false, description: "Apply pending migrations on `serve` against DATABASE_URL (the embedded database is always migrated)" },
  { key: "snippetLength", env: "CONVERSATION_SNIPPET_LENGTH", schema: integer(1, 4096), default: 64, description: "Characters (grapheme clusters) in a message snippet" },
  { key: "maxBodyBytes", env: "API_MAX_BODY_BYTES", schema: integer(1024, 64 * 1024 * 1024), default: 256 * 1024, description: "Largest accepted request body in bytes" },
  { key: "maxAttachments", env: "API_MAX_ATTACHMENTS", schema: integer(0, 100), default: 8, description: "Most attachments on one message (a route's providers may allow fewer: Twilio takes at most 10 media)" },
  { key: "emailAttachmentMaxBytes", env: "MESSAGING_EMAIL_ATTACHMENT_MAX_BYTES", schema: integer(1024, 30 * 1024 * 1024), default: 10 * 1024 * 1024, description: "Most bytes the attachments of one email may take together, fetched from their URLs through the egress guard and sent by SendGrid or SMTP; an email over it fails" },
  { key: "rateLimitPerKeyPerMin", env: "MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN", schema: integer(1, 10_000_000), default: 6000, description: "Requests per minute per API key (token bucket, burst equal to the limit); a key's own limit (`messaging keys create --rate-limit`) replaces it. Also the budget of each configured provider's webhook routes" },
  { key: "rateLimitPerIpPerMin", env: "API_RATE_LIMIT_PER_IP_PER_MIN", schema: integer(1, 10_000_000), default: 120, description: "Requests per minute per client IP of requests that do not authenticate (open routes), and of every request when auth is off (token bucket, burst equal to the limit)" },
  { key: "rateLimitPerSenderPerMin", env: "API_RATE_LIMIT_PER_SENDER_PER_MIN", schema: integer(1, 10_000_000), default: 60, description: "Sends per minute per normalized sender address" },
  { key: "redisUrl", env: "MESSAGING_REDIS_URL", schema: redisUrl().optional(), description: "Redis (`redis://` or `rediss://`) through which every instance shares the per-key, per-IP, per-sender and provider `max_per_second` limits and the auth-failure counter; unset: each process counts alone", secret: true },
  { key: "redisPrefix", env: "MESSAGING_REDIS_PREFIX", schema: z.string().trim().min(1).max(200), default: "messaging:", description: "Start of every Redis key this deployment writes, so several deployments can share one Redis" },
  { key: "redisRequired", env: "MESSAGING_REDIS_REQUIRED", schema: boolean(), default: false, description: "Answer /readyz 503 while the configured Redis does not answer (the service keeps serving on in-process limits either way)" },
  { key: "authFailureLimit", env: "MESSAGING_AUTH_FAILURE_LIMIT", schema: integer(1, 1_000_000), default: 10, description: "Wrong API keys (any Authorization header that does not authenticate) from one client IP within the window after which it is answered 429 (even with a correct key) until the window passes; a request without a key is charged to the per-IP limit instead" },
  { key: "authFailureWindowSecs", env: "MESSAGING_AUTH_FAILURE_WINDOW_SECS", schema: integer(1, 86400), default: 300, description: "Window of the auth-failure limit: remembered failures decay linearly to none over it, and a blocked client waits it out" },
  { key: "deliveryWorkers", env: "MESSAGING_DELIVERY_WORKERS", schema: integer(0, 64), default: 2, description: "Delivery worker loops in this process (each claims a batch, calls providers, writes results); 0 makes an API-only instance" },
  { key: "deliveryBatchSize", env: "MESSAGING_DELIVERY_BATCH_SIZE", schema: integer(1, 1000), default: 200, description: "Most delivery jobs one worker claims at a time" },
  { key: "deliveryPollMs", env: "MESSAGING_DELIVERY_POLL_MS", schema: integer(10, 60000), default: 500, description: "How often an idle worker looks for due jobs when no send woke it" },
  { key: "deliveryLeaseMs", env: "MESSAGING_DELIVERY_LEASE_MS", schema: integer(1000, 3600000), default: 60000, description: "How long a claim of a worker that never registered (a version before 0014) holds a job; a registered worker's claims last as long as it lives (raised to twice the provider timeout plus 5 s when shorter)" },
  { key: "deliveryTakeoverMs", env: "MESSAGING_DELIVERY_TAKEOVER_MS", schema: integer(1000, 600000), default: 5000, description: "How long a delivery worker that lost its database session may take to come back before another worker takes over its claims (a killed worker's claims are free this long after its death)" },
  { key: "deliveryMaxAttempts", env: "MESSAGING_DELIVERY_MAX_ATTEMPTS", schema: integer(1, 1000), default: 10, description: "Provider calls after which a message that was never accepted is failed" },
  { key: "deliveryMaxAgeSecs", env: "MESSAGING_DELIVERY_MAX_AGE_SECS", schema: integer(1, 30 * 86400), default: 86400, description: "Age after which a message that was never accepted is failed" },
  { key: "deliveryBackoffBaseMs", env: "MESSAGING_DELIVERY_BACKOFF_BASE_MS", schema: integer(1, 3600000), default: 1000, description: "First retry delay ceiling; doubles each attempt (full jitter)" },
  { key: "deliveryBackoffCapMs", env: "MESSAGING_DELIVERY_BACKOFF_CAP_MS", schema: integer(1, 86400000), default: 300000, description: "Largest retry delay (a provider's Retry-After may exceed it)" },
  { key: "deliveryRoutes", env: "MESSAGING_DELIVERY_ROUTES", schema: parsed(parseRoutes), default: parseRoutes(DEFAULT_ROUTES), description: `Provider chain of each channel, tried in order (failover): \`${DEFAULT_ROUTES}\`` },
  { key: "providerTimeoutMs", env: "MESSAGING_PROVIDER_TIMEOUT_MS", schema: integer(10, 600000), default: 10000, description: "A provider call without an answer by then is a transient error (retried with the same idempotency key)" },
  { key: "providerRates", env: "MESSAGING_PROVIDER_RATES", schema: parsed(parseRates), default: new Map<string, number>(), description: "Most calls per second per provider, e.g. `sms-mms=1,email=50` (default: unlimited); shared by all instances with MESSAGING_REDIS_URL, per process without" },
  { key: "breakerErrorThreshold", env: "API_BREAKER_ERROR_THRESHOLD", schema: integer(1, 1000), default: 5, description: "Consecutive provider failures that open a circuit breaker" },
  { key: "breakerOpenSecs", env: "API_BREAKER_OPEN_SECS", schema: integer(1, 3600), default: 30, description: "Seconds an open breaker waits before letting one probe through" },
  { key: "eventWorkers", env: "MESSAGING_EVENT_WORKERS", schema: boolean(), default: true, description: "POST client events (SPEC §10) to the subscribed endpoints from this process; off leaves that to other instances (GET /api/events needs no worker)" },
  { key: "eventConcurrency", env: "MESSAGING_EVENT_CONCURRENCY", schema: integer(1, 1000), default: 32, description: "Event POSTs in flight per endpoint and process" },
  { key: "eventTimeoutMs", env: "MESSAGING_EVENT_TIMEOUT_MS", schema: integer(100, 120000), default: 10000, description: "An event POST without a complete answer by then counts as failed and is retried" },
  { key: "eventPollMs", env: "MESSAGING_EVENT_POLL_MS", schema: integer(10, 60000), default: 100, description: "How often the event workers look for new events and due retries" },
  { key: "eventRetryHours", env: "MESSAGING_EVENT_RETRY_HOURS", schema: integer(1, 720), default: 24, description: "How long a failing event POST is retried (exponential backoff with jitter) before it is given up; a given-up event stays in the feed and is sent again by enable" },
  { key: "eventBackoffBaseMs", env: "MESSAGING_EVENT_BACKOFF_BASE_MS", schema: integer(1, 3600000), default: 5000, description: "Ceiling of the first event retry delay (half of it fixed, half random); doubles each try" },
  { key: "eventBackoffCapMs", env: "MESSAGING_EVENT_BACKOFF_CAP_MS", schema: integer(1, 86400000), default: 3600000, description: "Largest event retry delay ceiling" },
  { key: "eventDisableAfterHours", env: "MESSAGING_EVENT_DISABLE_AFTER_HOURS", schema: integer(1, 8760), default: 72, description: "An event endpoint whose deliveries have all failed this long is disabled (410 Gone disables at once)" },
  { key: "eventRetentionDays", env: "MESSAGING_EVENT_RETENTION_DAYS", schema: integer(1, 3650), default: 7, description: "Days events are kept for GET /api/events and undelivered endpoints; older ones are purged in batches" },
  { key: "providerTimeoutPct", env: "API_PROVIDER_TIMEOUT_PCT", schema: integer(0, 100), default: 0, description: "Mock provider: initial share of calls that time out" },
  { key: "providerErrorPct", env: "API_PROVIDER_ERROR_PCT", schema: integer(0, 100), default: 0, description: "Mock provider: initial share of calls that answer 5xx" },
  { key: "providerRatelimitPct", env: "API_PROVIDER_RATELIMIT_PCT", schema: integer(0, 100), default: 0, description: "Mock provider: initial share of calls that answer 429" },
  { key: "providerSeed", env: "API_PROVIDER_SEED", schema: integer(0, 2 ** 31 - 1).optional(), description: "Mock provider: seed that makes its outcomes reproducible" },
  { key: "securityHeadersEnabled", env: "SECURITY_HEADERS_ENABLED", schema: boolean(), default: true, description: "Send the security headers of SPEC §8 on every response" },
  { key: "webhookSecrets", env: "MESSAGING_WEBHOOK_SECRETS", schema: list(), default: [], description: "Secrets of the built-in webhook signature (comma-separated; any one verifies, so list the old and the new one during a rotation); when set, a valid X-Messaging-Signature opens /api/webhooks/sms and /api/webhooks/email as an API key with the inbound scope does, and /api/provider/mock/inbound requires it too (the Twilio and SendGrid routes carry their own proof); with MESSAGING_AUTH=off and none set, those routes accept unsigned requests", secret: true },
  { key: "webhookToleranceSecs", env: "MESSAGING_WEBHOOK_TOLERANCE_SECS", schema: integer(1, 86400), default: 300, description: "How far (past or future) a signed webhook's timestamp may be from the clock" },
  { key: "ssrfAllowlist", env: "SSRF_ALLOWLIST", schema: list(), default: [], description: "Hosts outbound requests may reach (comma-separated): exact names, `.suffix` for any subdomain, or IP addresses (an address listed here may be private or loopback)" },
  { key: "egressAllowHttp", env: "MESSAGING_EGRESS_ALLOW_HTTP", schema: boolean(), default: false, description: "Let outbound requests use plain http (port 80) as well as https" },
  { key: "attachmentPorts", env: "MESSAGING_ATTACHMENT_PORTS", schema: ports(), default: [], description: "Ports an email attachment's URL may name besides 443 (and 80 with MESSAGING_EGRESS_ALLOW_HTTP), e.g. a file server on 8443; its host must still be in SSRF_ALLOWLIST" },
  { key: "masterKeys", env: "MESSAGING_MASTER_KEYS", schema: parsed(masterKeysSetting).optional(), description: "Master keys of the provider credential store, `id:base64key` (32 bytes) comma-separated: the first encrypts, all decrypt (`messaging creds rotate` moves every credential to the first)", secret: true },
  { key: "masterKeysFile", env: "MESSAGING_MASTER_KEYS_FILE", schema: path().optional(), description: "File of master keys instead of MESSAGING_MASTER_KEYS (one `id:base64key` per line, `#` comments). With neither, the embedded database uses `master.keys` in the data directory, which `serve` generates (mode 0600); PostgreSQL stores no credentials without one" },
] as const satisfies readonly SettingSpec[];

type Entry = (typeof SETTINGS)[number];
type ValueOf<E extends Entry> = E extends { default: unknown }
  ? Exclude<z.output<E["schema"]>, undefined>
  : z.output<E["schema"]>;

/** The flat settings: one value each, from flags, the environment or the config file. */
export type FlatConfig = { [E in Entry as E["key"]]: ValueOf<E> };

/**
 * The config file's `providers` as written, for src/providers/config.ts to read (each kind's schema lives in its
 * own folder, above the configuration): `where` names the file in its messages, `routesWhere` where the routes
 * came from.
 */
export interface ProviderSource {
  readonly entries: unknown;
  readonly where: string;
  readonly routesWhere: string;
}

/**
 * The typed configuration: the flat settings and the file's provider entries, still unread. What the service runs
 * on is `ServiceConfig` (src/providers/config.ts): this with the providers read by their kinds' schemas.
 */
export type Config = FlatConfig & { readonly providerSource: ProviderSource };

/** snake_case key of a setting in a config file. */
export const fileKey = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
