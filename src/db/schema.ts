import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

/** A 64-bit transaction id (PostgreSQL's `xid8`), as decimal text. */
const xid8 = customType<{ data: string }>({ dataType: () => "xid8" });

const createdAt = () => timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow();

/** One row per pair of normalized addresses on one transport (`sms` covers SMS and MMS). */
export const conversations = pgTable(
  "conversations",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    transport: text("transport").notNull(),
    participantA: text("participant_a").notNull(),
    participantB: text("participant_b").notNull(),
    key: text("key").notNull(),
    messageCount: integer("message_count").notNull().default(0),
    lastActivityAt: timestamp("last_activity_at", { withTimezone: true, mode: "date" }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("conversations_key_uq").on(t.key),
    // NULLS FIRST matches a plain `ORDER BY last_activity_at DESC, id DESC`, so the index serves the listing.
    index("conversations_recent_idx").on(t.lastActivityAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  ],
);

/**
 * The number of conversations, kept by every statement that creates or deletes one, in the same statement
 * (see messages/repository.ts): `meta.total` is the sum of these rows, read in constant time instead of a
 * count(*) that grows with the table. Writers spread over the stripes (by backend) so that concurrent
 * transactions creating conversations do not queue on one row; a stripe alone means nothing and may go
 * negative (a deletion decrements whichever stripe its session hashes to).
 */
export const conversationCounters = pgTable("conversation_counters", {
  stripe: smallint("stripe").primaryKey(),
  conversations: bigint("conversations", { mode: "number" }).notNull().default(0),
});

/**
 * Every message, outbound and inbound. Bodies are plain text with no index on them. Pages are half filled by
 * inserts (fillfactor 50, migration 0018) so that a delivery claim's update stays in its page (HOT).
 */
export const messages = pgTable(
  "messages",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    conversationId: bigint("conversation_id", { mode: "number" })
      .notNull()
      .references(() => conversations.id),
    direction: text("direction").notNull(),
    channel: text("channel").notNull(),
    transport: text("transport").notNull(),
    fromAddr: text("from_addr").notNull(),
    toAddr: text("to_addr").notNull(),
    body: text("body").notNull(),
    attachments: jsonb("attachments").$type<string[]>().notNull().default(sql`'[]'::jsonb`),
    status: text("status").notNull(),
    provider: text("provider"),
    providerMessageId: text("provider_message_id"),
    /** Why an outbound message ended `failed` or `undelivered`: the last provider error or the report's code. */
    statusReason: text("status_reason"),
    /** Email only: the sender's subject, or the body's 78-character snippet when none was given. */
    subject: text("subject"),
    /** SMS/MMS only: the parts a carrier bills for the body and their encoding (`GSM-7` or `UCS-2`). */
    segments: smallint("segments"),
    encoding: text("encoding"),
    timestamp: timestamp("timestamp", { withTimezone: true, mode: "date" }).notNull(),
    /** When a scheduled outbound message is due (SPEC §3 `send_at`); null for one sent at once. Not indexed. */
    sendAt: timestamp("send_at", { withTimezone: true, mode: "date" }),
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    /*
     * The message is its own delivery job (migration 0016, delivery/jobs.ts): it is in the queue exactly while
     * `run_at` is set (when it may next be claimed); `attempts` counts its provider calls so far, and
     * `locked_by`/`locked_until` are the claim of the worker holding it. The status write clears all of it when
     * the message becomes final.
     */
    runAt: timestamp("run_at", { withTimezone: true, mode: "date" }),
    attempts: integer("attempts").notNull().default(0),
    lockedBy: text("locked_by"),
    lockedUntil: timestamp("locked_until", { withTimezone: true, mode: "date" }),
    /**
     * Status events the status write inserted itself (migration 0020, delivery/status.ts): a status change that
     * does not count one gets its event from the row trigger instead.
     */
    statusEvents: integer("status_events").notNull().default(0),
  },
  (t) => [
    // The delivery queue: only messages waiting for a provider are in it.
    index("messages_due_idx").on(t.runAt).where(sql`run_at IS NOT NULL`),
    index("messages_conversation_time_idx").on(t.conversationId, t.timestamp, t.id),
    // Retention takes the oldest messages first, a batch at a time (modules/retention).
    index("messages_timestamp_idx").on(t.timestamp),
    // A provider may deliver the same webhook twice; the first one wins.
    uniqueIndex("messages_inbound_provider_uq")
      .on(t.transport, t.providerMessageId)
      .where(sql`direction = 'inbound' AND provider_message_id IS NOT NULL`),
    // Delivery reports name a message by the id its provider gave it.
    index("messages_outbound_provider_idx")
      .on(t.providerMessageId)
      .where(sql`direction = 'outbound' AND provider_message_id IS NOT NULL`),
  ],
);

/**
 * Scheduled messages still waiting for their `send_at` (status `scheduled`); the row leaves when the promoter
 * (modules/scheduling) hands the message to the delivery queue or a cancel takes it back, and with its message
 * (cascade). Kept apart from `messages` so the due scan reads pending rows only and no index of `messages`
 * covers its status (status changes stay HOT updates).
 */
export const scheduledMessages = pgTable(
  "scheduled_messages",
  {
    messageId: bigint("message_id", { mode: "number" })
      .primaryKey()
      .references(() => messages.id, { onDelete: "cascade" }),
    sendAt: timestamp("send_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [index("scheduled_messages_due_idx").on(t.sendAt, t.messageId)],
);

/**
 * The delivery workers that may hold claims (delivery/liveness.ts). Each holds a session-level advisory lock
 * (key `lock_key`) on its own connection and writes `seen_at` every second; `connected_at` is when its current
 * session began. A claim is taken over only when its holder is proved gone: no session holds its lock and it has
 * not been seen for the takeover bound.
 */
export const deliveryWorkers = pgTable("delivery_workers", {
  id: text("id").primaryKey(),
  lockKey: integer("lock_key").notNull(),
  backendPid: integer("backend_pid"),
  connectedAt: timestamp("connected_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  seenAt: timestamp("seen_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});

/**
 * One row per provider call, kept for `GET /api/messages/{id}` and audits. Keyed by (message_id, id), its only
 * index (migration 0019): every reader asks by message.
 */
export const deliveryAttempts = pgTable(
  "delivery_attempts",
  {
    id: bigserial("id", { mode: "number" }).notNull(),
    messageId: bigint("message_id", { mode: "number" })
      .notNull()
      .references(() => messages.id),
    attempt: integer("attempt").notNull(),
    provider: text("provider").notNull(),
    outcome: text("outcome").notNull(),
    statusCode: integer("status_code"),
    error: text("error"),
    durationMs: integer("duration_ms").notNull(),
    startedAt: timestamp("started_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [primaryKey({ name: "delivery_attempts_message_id_id_pk", columns: [t.messageId, t.id] })],
);

/**
 * The mock provider's own memory of what it accepted, one row per idempotency key: a provider that honours
 * keys answers a repeat with its first acceptance and `calls` counts how often it was asked. Kept in the
 * database (not in the process) so it outlives a crash of the process that called it, as a real provider's
 * would; tests read it to prove that no message was sent twice. UNLOGGED (migration 0018): no WAL for a test
 * double's memory; a crash of PostgreSQL itself empties it.
 */
export const mockProviderSends = pgTable("mock_provider_sends", {
  idempotencyKey: text("idempotency_key").primaryKey(),
  provider: text("provider").notNull(),
  providerMessageId: text("provider_message_id").notNull(),
  calls: integer("calls").notNull().default(1),
  createdAt: createdAt(),
});

/**
 * API keys (SPEC §8). Only a hash of each key's secret is kept; `prefix` is the public part of the key
 * (`msg_<prefix>_<secret>`), unique, by which a presented key is looked up.
 */
export const apiKeys = pgTable("api_keys", {
  id: uuid("id").primaryKey(),
  name: text("name").notNull(),
  prefix: text("prefix").notNull().unique(),
  /** SHA-256 of the secret part, hex (see security/api-keys.ts for why a fast hash is right here). */
  secretHash: text("secret_hash").notNull(),
  scopes: jsonb("scopes").$type<string[]>().notNull(),
  createdAt: createdAt(),
  lastUsedAt: timestamp("last_used_at", { withTimezone: true, mode: "date" }),
  expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }),
  revokedAt: timestamp("revoked_at", { withTimezone: true, mode: "date" }),
  /** Requests per minute for this key; null: `MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN` (0011). */
  rateLimitPerMin: integer("rate_limit_per_min"),
}, (t) => [check("api_keys_rate_limit_per_min_positive", sql`${t.rateLimitPerMin} IS NULL OR ${t.rateLimitPerMin} > 0`)]);

/**
 * Provider secrets (issue 9), encrypted under a master key (security/keyring.ts): one row per version of each
 * `provider/name`. The highest version is the one sent with; an earlier one with `verify_until` in the future still
 * verifies inbound signatures (a rotation's overlap). `envelope` names its key id, and `key_id` repeats it so
 * `creds list` and `check` can say which master key a value needs without decrypting it. `updated_at` moves with
 * every write, so running instances notice a change by polling `count(*)` and `max(updated_at)`.
 */
export const providerCredentials = pgTable(
  "provider_credentials",
  {
    provider: text("provider").notNull(),
    name: text("name").notNull(),
    version: integer("version").notNull(),
    keyId: text("key_id").notNull(),
    envelope: text("envelope").notNull(),
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    verifyUntil: timestamp("verify_until", { withTimezone: true, mode: "date" }),
  },
  (t) => [primaryKey({ columns: [t.provider, t.name, t.version] }), check("provider_credentials_version_positive", sql`${t.version} >= 1`)],
);

/** Stored responses of requests that carried an Idempotency-Key, per (API key, route) scope. */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    scope: text("scope").notNull(),
    key: text("key").notNull(),
    requestHash: text("request_hash").notNull(),
    responseStatus: integer("response_status").notNull(),
    responseBody: jsonb("response_body").notNull(),
    /** The first answer's text, which a replay repeats (since 0021; jsonb reorders keys). Null in older rows. */
    responseText: text("response_text"),
    createdAt: createdAt(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.key] }), index("idempotency_keys_expiry_idx").on(t.expiresAt)],
);

/** Settings changed at run time through the API (the mock provider's fault injection), shared by all instances. */
export const runtimeSettings = pgTable("runtime_settings", {
  name: text("name").primaryKey(),
  value: jsonb("value").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});

/**
 * One row per write statement of the message path, committed with it: after a lost connection the process
 * learns whether its write committed by looking its token up (db/write-fence.ts). `result` holds the ids the
 * statement returned, in order; NULL marks a token fenced off by that lookup, so the write can never commit
 * afterwards. Tokens are UUIDv7 (time-ordered, so inserts append to the index); rows live minutes.
 */
export const writeReceipts = pgTable("write_receipts", {
  token: uuid("token").primaryKey(),
  result: jsonb("result"),
  createdAt: createdAt(),
});

/**
 * Who asked not to be texted by whom (carrier opt-out rules): sends from `from_addr` (our number) to `to_addr`
 * (the person, who texted STOP to our number, or whom the provider reports as unsubscribed) are refused while
 * the row exists; an opt-in keyword deletes it. Both addresses are normalized phone numbers (domain/address.ts).
 * `source` is `inbound` (a keyword message, `message_id` its id) or `provider` (an answer such as Twilio's
 * 21610, `message_id` the outbound message it refused); `reason` is the keyword or the provider's code.
 * `message_id` has no foreign key: the opt-out outlives the message (retention, conversation deletion).
 */
export const optOuts = pgTable(
  "opt_outs",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    fromAddr: text("from_addr").notNull(),
    toAddr: text("to_addr").notNull(),
    source: text("source").notNull(),
    reason: text("reason").notNull(),
    messageId: bigint("message_id", { mode: "number" }),
    createdAt: createdAt(),
  },
  (t) => [
    // The send path's check, and the one row per pair that a repeated STOP finds already there.
    uniqueIndex("opt_outs_pair_uq").on(t.fromAddr, t.toAddr),
    // GET /api/opt-outs, newest first.
    index("opt_outs_recent_idx").on(t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  ],
);

/**
 * Event ids a provider sent us (SendGrid's `sg_event_id`), so a batch delivered twice is applied once. Rows are
 * deleted after a few days (modules/provider-webhooks): longer than a signed batch stays acceptable, so a replay
 * that still verifies is still recognised.
 */
export const providerEvents = pgTable(
  "provider_events",
  {
    provider: text("provider").notNull(),
    eventId: text("event_id").notNull(),
    receivedAt: timestamp("received_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: "provider_events_pk", columns: [t.provider, t.eventId] }), index("provider_events_received_idx").on(t.receivedAt)],
);

/**
 * Events to the client app (SPEC §10), one row per status change, inbound message or opt-out change, written by
 * the triggers of migration 0012 in the transaction of the change (drizzle cannot declare triggers: the SQL is the
 * source). `subject` is the message id, or `recipient:<from>><to>` for opt-outs; `sequence` counts from 1 per
 * subject. The message's changing fields (status, reason, provider) are kept as of the event; the rest is read
 * from the message when the event is rendered (events/feed.ts). `feed_xid` (0017: the writing transaction's id,
 * never below the previous event of its subject) and `id` order the feed; `position` is the order the sequencer of
 * 0012 gave the events written before 0017, which come first.
 */
export const events = pgTable(
  "events",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    publicId: uuid("public_id").notNull().defaultRandom(),
    position: bigint("position", { mode: "number" }),
    feedXid: xid8("feed_xid"),
    type: text("type").notNull(),
    subject: text("subject").notNull(),
    sequence: integer("sequence").notNull(),
    messageId: bigint("message_id", { mode: "number" }),
    status: text("status"),
    reason: text("reason"),
    provider: text("provider"),
    providerMessageId: text("provider_message_id"),
    data: jsonb("data"),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("events_feed_idx").on(t.position).where(sql`position IS NOT NULL`),
    index("events_order_idx").on(t.feedXid, t.id).where(sql`feed_xid IS NOT NULL`),
    index("events_subject_idx").on(t.subject, t.sequence),
    index("events_created_brin").using("brin", t.createdAt),
  ],
);

/** Where events are POSTed; the signing secret is in provider_credentials as `event-endpoint:<id>/signing_secret`. */
export const eventEndpoints = pgTable("event_endpoints", {
  id: bigserial("id", { mode: "number" }).primaryKey(),
  url: text("url").notNull(),
  events: text("events").array().notNull(),
  description: text("description"),
  createdAt: createdAt(),
  disabledAt: timestamp("disabled_at", { withTimezone: true, mode: "date" }),
  disabledReason: text("disabled_reason"),
  failingSince: timestamp("failing_since", { withTimezone: true, mode: "date" }),
  lastAttemptAt: timestamp("last_attempt_at", { withTimezone: true, mode: "date" }),
  lastOutcome: text("last_outcome"),
  lastStatusCode: integer("last_status_code"),
  lastError: text("last_error"),
});

/** An event still to be POSTed to one endpoint (events/deliveries.ts); deleted by its 2xx. */
export const eventDeliveries = pgTable(
  "event_deliveries",
  {
    endpointId: bigint("endpoint_id", { mode: "number" })
      .notNull()
      .references(() => eventEndpoints.id, { onDelete: "cascade" }),
    eventId: bigint("event_id", { mode: "number" })
      .notNull()
      .references(() => events.id, { onDelete: "cascade" }),
    subject: text("subject").notNull(),
    sequence: integer("sequence").notNull(),
    runAt: timestamp("run_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    attempts: integer("attempts").notNull().default(0),
    firstAt: timestamp("first_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    gaveUpAt: timestamp("gave_up_at", { withTimezone: true, mode: "date" }),
    lockedBy: text("locked_by"),
    lockedUntil: timestamp("locked_until", { withTimezone: true, mode: "date" }),
    lastError: text("last_error"),
  },
  (t) => [
    primaryKey({ name: "event_deliveries_pk", columns: [t.endpointId, t.eventId] }),
    index("event_deliveries_due_idx").on(t.endpointId, t.runAt, t.eventId).where(sql`gave_up_at IS NULL`),
    index("event_deliveries_subject_idx").on(t.subject, t.endpointId, t.sequence),
    index("event_deliveries_event_idx").on(t.eventId),
  ],
);

/** The router's one row: the last event routed, as (feed_xid, event_id); `position` is 0012's, read by nothing now. */
export const eventRouter = pgTable("event_router", {
  id: integer("id").primaryKey(),
  position: bigint("position", { mode: "number" }).notNull(),
  feedXid: xid8("feed_xid").notNull().default(sql`'0'`),
  eventId: bigint("event_id", { mode: "number" }).notNull().default(0),
});
