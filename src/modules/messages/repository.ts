import { asc, eq, sql as dsql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { deliveryAttempts } from "../../db/schema.ts";
import { cursorTimestamp } from "../../db/json-sql.ts";
import { messageItemJson } from "../../db/message-item-sql.ts";
import type { Channel, Transport } from "../../domain/channel.ts";
import type { OptOutPair } from "../../domain/opt-out.ts";
import type { SmsEncoding } from "../../domain/sms-segments.ts";
import type { RowKey } from "../../http/page-cursor.ts";
import type { MessageDetail, MessageItem } from "./model.ts";

export interface NewMessage {
  direction: "outbound" | "inbound";
  channel: Channel;
  transport: Transport;
  from: string;
  to: string;
  body: string;
  /** Email only (null for sms/mms). */
  subject: string | null;
  /** SMS/MMS only (null for email). */
  segments: number | null;
  encoding: SmsEncoding | null;
  attachments: string[];
  status: "scheduled" | "queued" | "received";
  /** Outbound only: when a scheduled send is due (status `scheduled`); null for one sent at once. */
  sendAt: Date | null;
  providerMessageId: string | null;
  timestamp: Date;
  conversationKey: string;
  participantA: string;
  participantB: string;
  /**
   * SMS/MMS only (null for email): the opt-out that concerns this message, `(from, to)` normalized for an outbound
   * one (it refuses the send), `(to, from)` for an inbound one (a keyword in it sets or clears it).
   */
  optOutPair: OptOutPair | null;
}

export interface StoredIds {
  id: string;
  conversation_id: string;
}

/*
 * Whether an `INSERT … ON CONFLICT DO UPDATE` row was inserted (true) or updated (false): a row the statement
 * inserted has no deleting or locking transaction yet (xmax 0), while the conflict branch locks the row it
 * updates, which sets xmax. test/modules/conversations/counters.test.ts holds both databases to it.
 */
export const INSERTED = "(c.xmax = 0) AS inserted";

/*
 * Adds the conversations the `ins` CTE really inserted to one counter stripe (schema.ts), in the statement
 * that inserts them, so the total commits or rolls back with them. The stripe follows the session, so
 * concurrent writers on different connections rarely meet on a row; a statement that inserted no
 * conversation (the usual case) locks none. The counter is written after every conversation lock of the
 * statement was taken (its value reads `ins` to the end), so it is always the last lock and cannot deadlock.
 */
const COUNT_NEW_CONVERSATIONS = `
  counted AS (
    UPDATE conversation_counters k SET conversations = k.conversations + n.inserted
      FROM (SELECT count(*) FILTER (WHERE inserted) AS inserted FROM ins) n
     WHERE k.stripe = pg_backend_pid() % 16 AND n.inserted > 0)`;

/*
 * The write path is ONE statement: the conversation upsert (creating the pair or bumping its count and
 * last activity), the message insert (an outbound one is its own delivery job, due at once), chained through
 * data-modifying CTEs. One statement is one implicit transaction and one round trip, so a 202 follows a
 * single commit. Raw SQL because drizzle cannot chain inserts through CTEs into a prepared statement.
 *
 * The upsert updates first and inserts only a missing pair: an INSERT … ON CONFLICT that finds its row would
 * still draw (and waste) a conversation id. Two first messages racing for a new pair both reach the INSERT;
 * the loser's ON CONFLICT counts it, drawing one id only in that race. Nothing is written unless `allowed`
 * holds (the send's opt-out check), and without a conversation row no message follows.
 */
const upsertConversation = (allowed = "true") => `
  upd AS (
    UPDATE conversations c
       SET message_count = c.message_count + 1,
           last_activity_at = GREATEST(c.last_activity_at, $5::timestamptz)
     WHERE c.key = $4 AND ${allowed}
    RETURNING c.id),
  ins AS (
    INSERT INTO conversations AS c (transport, participant_a, participant_b, key, message_count, last_activity_at)
    SELECT $1, $2, $3, $4, 1, $5::timestamptz WHERE NOT EXISTS (SELECT 1 FROM upd) AND ${allowed}
    ON CONFLICT (key) DO UPDATE
      SET message_count = c.message_count + 1,
          last_activity_at = GREATEST(c.last_activity_at, EXCLUDED.last_activity_at)
    RETURNING c.id, ${INSERTED}),
  ${COUNT_NEW_CONVERSATIONS},
  conv AS (SELECT id FROM upd UNION ALL SELECT id FROM ins)`;

/**
 * The message insert of the single-message statements; `sendAt` is the SQL of its `send_at` (scheduled sends),
 * `runAt` of its `run_at`: `now()` puts an outbound message in the delivery queue, due at once (the message row is
 * its own job, delivery/jobs.ts); NULL keeps it out (inbound, scheduled).
 */
const insertMessageSql = (sendAt = "NULL", runAt = "NULL") => `
  INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, attachments, status, provider_message_id, timestamp,
                        subject, segments, encoding, send_at, run_at)
  SELECT conv.id, $6, $7, $1, $8, $9, $10, $11::jsonb, $12, $13, $5::timestamptz, $15, $16::smallint, $17, ${sendAt}::timestamptz, ${runAt} FROM conv
  RETURNING id, conversation_id, send_at`;
const INSERT_MESSAGE = insertMessageSql();

/**
 * The write's receipt (see db/write-fence.ts): its token and the ids it returns, committed with it. A write that
 * stored nothing (a send refused for an opt-out) leaves none, so a lost connection then reads as "not stored".
 * A refused message of a batch is a `[null, null]` pair among the others.
 */
const RECEIPT = (token: string, rows: string, order = "") => `
  receipt AS (INSERT INTO write_receipts (token, result)
              SELECT ${token}::uuid, jsonb_agg(jsonb_build_array(id::text, conversation_id::text)${order}) FROM ${rows}
              HAVING count(*) > 0)`;

/*
 * An outbound SMS/MMS whose recipient opted out of its sender ($18, $19: the normalized pair; NULL for an email,
 * which matches nothing) stores nothing: the conversation is neither created nor bumped, so no message or job
 * follows, and the statement answers one row of NULLs. The check reads the same snapshot as the writes, in the
 * same statement, so a send and an opt-out race only when they commit at the same moment.
 */
const OPTED_OUT = `opted_out AS (SELECT 1 FROM opt_outs WHERE from_addr = $18 AND to_addr = $19)`;
const NOT_OPTED_OUT = "NOT EXISTS (SELECT 1 FROM opted_out)";

const INSERT_OUTBOUND = `
  WITH ${OPTED_OUT},
  ${upsertConversation(NOT_OPTED_OUT)},
  msg AS (${insertMessageSql("NULL", "now()")}),
  ${RECEIPT("$14", "msg")}
  SELECT msg.id::text AS id, msg.conversation_id::text AS conversation_id FROM (SELECT 1) one LEFT JOIN msg ON true`;

/*
 * A scheduled send ($20: its send_at) is stored and counted like any send, opt-out check included, but waits in
 * `scheduled_messages` instead of the delivery queue: the promoter (modules/scheduling) queues it when due.
 */
const INSERT_SCHEDULED = `
  WITH ${OPTED_OUT},
  ${upsertConversation(NOT_OPTED_OUT)},
  msg AS (${insertMessageSql("$20")}),
  waiting AS (INSERT INTO scheduled_messages (message_id, send_at) SELECT id, send_at FROM msg),
  ${RECEIPT("$14", "msg")}
  SELECT msg.id::text AS id, msg.conversation_id::text AS conversation_id FROM (SELECT 1) one LEFT JOIN msg ON true`;

const INSERT_INBOUND = `
  WITH ${upsertConversation()},
  msg AS (${INSERT_MESSAGE}),
  ${RECEIPT("$14", "msg")}
  SELECT id::text AS id, conversation_id::text AS conversation_id FROM msg`;

/**
 * Stores a message with its conversation update (in the delivery queue when outbound, or its place among the scheduled
 * when it has a `sendAt`) in one statement, with a
 * receipt under `token` so that its outcome can be learned after a lost connection. Null: an outbound SMS/MMS
 * whose recipient opted out of its sender; nothing was stored.
 */
export async function insertMessage(sql: SqlRunner, m: NewMessage, token: string): Promise<StoredIds | null> {
  const outbound = m.direction === "outbound";
  const params = [
    m.transport,
    m.participantA,
    m.participantB,
    m.conversationKey,
    m.timestamp.toISOString(),
    m.direction,
    m.channel,
    m.from,
    m.to,
    m.body,
    JSON.stringify(m.attachments),
    m.status,
    m.providerMessageId,
    token,
    m.subject,
    m.segments,
    m.encoding,
  ];
  if (outbound) params.push(m.optOutPair?.from ?? null, m.optOutPair?.to ?? null);
  if (m.sendAt) params.push(m.sendAt.toISOString());
  const statement = !outbound ? INSERT_INBOUND : m.sendAt ? INSERT_SCHEDULED : INSERT_OUTBOUND;
  const [row] = await sql.query<{ id: string | null; conversation_id: string | null }>(statement, params);
  if (!row) throw new Error("message insert returned no row");
  return row.id === null || row.conversation_id === null ? null : { id: row.id, conversation_id: row.conversation_id };
}

/*
 * The same writes for many outbound messages in one statement (see send-batcher.ts). Each conversation is
 * touched once with the batch's count and latest timestamp. Existing rows are locked in key order first
 * (`FOR UPDATE` above a sort) and missing ones inserted in key order, so concurrent batches take their locks
 * in one order and cannot deadlock. Message ids are drawn up front so each caller learns its own by position.
 * The messages arrive as one JSON array ($1, see `batchRow`; $2 is the receipt's token), their order kept by
 * `WITH ORDINALITY`. A message whose recipient opted out of its sender (`of`, `ot`: the normalized pair, absent for
 * emails) is left out of every write and answered as a row of NULLs in its place, as the single send does. A
 * scheduled send (`at`: its send_at, absent for one sent at once) is stored `scheduled` and waits in
 * scheduled_messages instead of the queue.
 */
const INSERT_OUTBOUND_BATCH = `
  WITH checked AS MATERIALIZED (
    SELECT t.*, EXISTS (SELECT 1 FROM opt_outs o WHERE o.from_addr = t.opt_from AND o.to_addr = t.opt_to) AS opted_out
      FROM ROWS FROM (json_to_recordset($1::text::json) AS (t text, a text, b text, k text, ts timestamptz, c text, f text, r text, x text, m jsonb,
                                                       s text, g smallint, e text, of text, ot text, at timestamptz))
           WITH ORDINALITY AS t(transport, participant_a, participant_b, key, ts, channel, from_addr, to_addr, body, attachments,
                                subject, segments, encoding, opt_from, opt_to, send_at, ord)
  ),
  input AS MATERIALIZED (
    SELECT checked.*, nextval('messages_id_seq'::regclass) AS id FROM checked WHERE NOT opted_out
  ),
  agg AS MATERIALIZED (
    SELECT key, min(transport) AS transport, min(participant_a) AS participant_a, min(participant_b) AS participant_b,
           count(*)::int AS n, max(ts) AS ts
      FROM input GROUP BY key
  ),
  locked AS MATERIALIZED (
    SELECT c.id, c.key FROM conversations c JOIN agg ON agg.key = c.key ORDER BY c.key FOR UPDATE OF c
  ),
  upd AS (
    UPDATE conversations c
       SET message_count = c.message_count + agg.n,
           last_activity_at = GREATEST(c.last_activity_at, agg.ts)
      FROM locked JOIN agg ON agg.key = locked.key
     WHERE c.id = locked.id
    RETURNING c.id, c.key
  ),
  ins AS (
    INSERT INTO conversations AS c (transport, participant_a, participant_b, key, message_count, last_activity_at)
    SELECT transport, participant_a, participant_b, key, n, ts FROM agg
     WHERE NOT EXISTS (SELECT 1 FROM locked WHERE locked.key = agg.key)
     ORDER BY key
    ON CONFLICT (key) DO UPDATE
      SET message_count = c.message_count + EXCLUDED.message_count,
          last_activity_at = GREATEST(c.last_activity_at, EXCLUDED.last_activity_at)
    RETURNING c.id, c.key, ${INSERTED}
  ),
  ${COUNT_NEW_CONVERSATIONS},
  conv AS (SELECT id, key FROM upd UNION ALL SELECT id, key FROM ins),
  msg AS (
    INSERT INTO messages (id, conversation_id, direction, channel, transport, from_addr, to_addr, body, attachments, status, timestamp,
                          subject, segments, encoding, send_at, run_at)
    SELECT input.id, conv.id, 'outbound', input.channel, input.transport, input.from_addr, input.to_addr, input.body,
           input.attachments, CASE WHEN input.send_at IS NULL THEN 'queued' ELSE 'scheduled' END, input.ts, input.subject,
           input.segments, input.encoding, input.send_at, CASE WHEN input.send_at IS NULL THEN now() END
      FROM input JOIN conv USING (key)
    RETURNING id, send_at
  ),
  waiting AS (INSERT INTO scheduled_messages (message_id, send_at) SELECT id, send_at FROM msg WHERE send_at IS NOT NULL),
  stored AS (SELECT input.ord, input.id, conv.id AS conversation_id FROM input JOIN conv USING (key)),
  answer AS (SELECT checked.ord, stored.id, stored.conversation_id FROM checked LEFT JOIN stored USING (ord)),
  ${RECEIPT("$2", "answer", " ORDER BY ord")}
  SELECT id::text AS id, conversation_id::text AS conversation_id FROM answer ORDER BY ord`;

/**
 * Stores many outbound messages in one statement, with one receipt; the result is in the order of `batch`,
 * null for each message whose recipient opted out of its sender (nothing of it stored).
 */
export async function insertOutboundBatch(sql: SqlRunner, batch: NewMessage[], token: string): Promise<(StoredIds | null)[]> {
  const rows = await sql.query<{ id: string | null; conversation_id: string | null }>(INSERT_OUTBOUND_BATCH, [
    JSON.stringify(batch.map(batchRow)),
    token,
  ]);
  if (rows.length !== batch.length) throw new Error(`batch insert answered ${rows.length} of ${batch.length} messages`);
  return rows.map((r) => (r.id === null || r.conversation_id === null ? null : { id: r.id, conversation_id: r.conversation_id }));
}

/**
 * One message of a batch as the statement's JSON row (its short keys are the column list of `json_to_recordset`); an
 * absent key is NULL: a batch mixes emails (subject, no segments or opt-out pair) with SMS (segments, no subject).
 * One `JSON.stringify` of the batch replaced seventeen array literals quoted value by value, which cost this process
 * more than postgres.js's own work on the statement.
 */
function batchRow(m: NewMessage) {
  return {
    t: m.transport,
    a: m.participantA,
    b: m.participantB,
    k: m.conversationKey,
    ts: m.timestamp.toISOString(),
    c: m.channel,
    f: m.from,
    r: m.to,
    x: m.body,
    m: m.attachments,
    s: m.subject ?? undefined,
    g: m.segments ?? undefined,
    e: m.encoding ?? undefined,
    of: m.optOutPair?.from,
    ot: m.optOutPair?.to,
    at: m.sendAt?.toISOString(),
  };
}

/**
 * Serializes inbound deliveries of one provider id for the rest of the transaction, so a provider's
 * concurrent retries cannot both pass the duplicate check (the unique index stays as the backstop).
 */
export async function lockInboundProviderId(sql: SqlRunner, transport: Transport, providerMessageId: string): Promise<void> {
  await sql.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7001))", [`${transport}\u001f${providerMessageId}`]);
}

export async function findInbound(sql: SqlRunner, transport: Transport, providerMessageId: string): Promise<StoredIds | undefined> {
  const [row] = await sql.query<StoredIds>(
    `SELECT id::text AS id, conversation_id::text AS conversation_id FROM messages
      WHERE transport = $1 AND provider_message_id = $2 AND direction = 'inbound' AND provider_message_id IS NOT NULL`,
    [transport, providerMessageId],
  );
  return row;
}

/*
 * What only GET /api/messages/{id} shows: who carries the message and why it failed. A reason is shown only
 * with the status it explains, whatever an earlier step left in the column.
 */
const DETAIL_FIELDS = `, 'provider', m.provider, 'provider_message_id', m.provider_message_id,
  'status_reason', CASE WHEN m.status IN ('failed', 'undelivered') THEN m.status_reason END`;

/*
 * One page of a conversation's messages, oldest first (ties by id), as JSON built by PostgreSQL (see
 * db/json-sql.ts), with the conversation's exact message_count as the total; no row means no such conversation.
 * The rows start after the key ($4, $5): `(timestamp, id) > (…)` under `conversation_id = $1` is a range scan of
 * messages_conversation_time_idx, so a cursor page costs the same at any depth. One row beyond the page is read
 * only to learn whether a next page exists; `next_at`/`next_id` are the last shown row's key when one does.
 */
const CONVERSATION_PAGE = `
  SELECT c.message_count AS total, p.items, p.next_at, p.next_id
    FROM conversations c
    CROSS JOIN LATERAL (
      SELECT coalesce(json_agg(${messageItemJson("m")} ORDER BY m.timestamp, m.id) FILTER (WHERE m.n <= $2), '[]')::text AS items,
             CASE WHEN count(*) > $2 THEN max(CASE WHEN m.n = $2 THEN ${cursorTimestamp("m.timestamp")} END) END AS next_at,
             CASE WHEN count(*) > $2 THEN max(CASE WHEN m.n = $2 THEN m.id END)::text END AS next_id
        FROM (SELECT r.*, row_number() OVER (ORDER BY r.timestamp, r.id) AS n
                FROM (SELECT * FROM messages
                       WHERE conversation_id = c.id AND (timestamp, id) > ($4::text::timestamptz, $5::text::bigint)
                       ORDER BY timestamp, id LIMIT $2::int + 1 OFFSET $3) r) m) p
   WHERE c.id = $1`;

/** Sorts before every message in the list's order (oldest first), so the whole conversation is "after" it. */
const FIRST_KEY: RowKey = { at: "-infinity", id: "0" };

const MESSAGE_BY_ID = `SELECT ${messageItemJson("m", DETAIL_FIELDS)}::text AS item FROM messages m WHERE m.id = $1`;

/*
 * One page of the messages of one status (`GET /api/messages?status=`), oldest first by id, with the number of
 * them. The rows start after id $3: a range scan of the primary key filtered by status, so no index covers
 * `messages.status` (a status change stays a HOT update) and a page costs what it skips of other statuses. The
 * scheduled list reads `scheduled_messages` instead, which holds exactly the waiting ones: cheap at any size.
 * `$source` is the rows to walk (`m` with an `id` order); one row beyond the page says whether a next exists.
 */
const statusPage = (source: string, total: string) => `
  WITH page AS (
    SELECT p.*, row_number() OVER (ORDER BY p.id) AS n
      FROM (${source} ORDER BY m.id LIMIT $2::int + 1 OFFSET $4) p)
  SELECT (${total})::int AS total,
         coalesce(json_agg(${messageItemJson("m")} ORDER BY m.id) FILTER (WHERE m.n <= $2), '[]')::text AS items,
         CASE WHEN count(*) > $2 THEN max(CASE WHEN m.n = $2 THEN ${cursorTimestamp("m.created_at")} END) END AS next_at,
         CASE WHEN count(*) > $2 THEN max(CASE WHEN m.n = $2 THEN m.id END)::text END AS next_id
    FROM page m`;

const STATUS_PAGE = statusPage(
  "SELECT m.* FROM messages m WHERE m.status = $1 AND m.id > $3::text::bigint",
  "SELECT count(*) FROM messages WHERE status = $1",
);
const SCHEDULED_PAGE = statusPage(
  "SELECT m.* FROM scheduled_messages s JOIN messages m ON m.id = s.message_id WHERE m.status = $1 AND s.message_id > $3::text::bigint",
  "SELECT count(*) FROM scheduled_messages WHERE $1::text = 'scheduled'",
);

/** A page of the messages whose status is `status`: after `after` (default: from the first), less `offset` rows. */
export async function messagesByStatusPage(
  sql: SqlRunner,
  status: string,
  limit: number,
  offset: number,
  after?: RowKey,
): Promise<{ items: MessageJson[]; total: number; next: RowKey | null }> {
  const [row] = await sql.query<{ total: number; items: string; next_at: string | null; next_id: string | null }>(
    status === "scheduled" ? SCHEDULED_PAGE : STATUS_PAGE,
    [status, limit, after?.id ?? "0", offset],
  );
  const next = row?.next_at && row.next_id ? { at: row.next_at, id: row.next_id } : null;
  return { items: JSON.parse(row?.items ?? "[]") as MessageJson[], total: row?.total ?? 0, next };
}

export type MessageJson = Omit<MessageItem, "snippet">;
export type MessageDetailJson = Omit<MessageDetail, "snippet" | "attempts">;

/** A page of a conversation's messages: the rows after `after` (default: from the start), less the first `offset`. */
export async function conversationMessagesPage(
  sql: SqlRunner,
  conversationId: number,
  limit: number,
  offset: number,
  after?: RowKey,
): Promise<{ items: MessageJson[]; total: number; next: RowKey | null } | undefined> {
  const from = after ?? FIRST_KEY;
  const [row] = await sql.query<{ total: number; items: string; next_at: string | null; next_id: string | null }>(CONVERSATION_PAGE, [
    conversationId,
    limit,
    offset,
    from.at,
    from.id,
  ]);
  if (!row) return undefined;
  const next = row.next_at && row.next_id ? { at: row.next_at, id: row.next_id } : null;
  return { items: JSON.parse(row.items) as MessageJson[], total: row.total, next };
}

export async function messageById(sql: SqlRunner, id: number): Promise<MessageDetailJson | undefined> {
  const [row] = await sql.query<{ item: string }>(MESSAGE_BY_ID, [id]);
  return row && (JSON.parse(row.item) as MessageDetailJson);
}

export type AttemptRow = typeof deliveryAttempts.$inferSelect;

/** Prepared once per database. */
export function messageQueries(db: Database) {
  const attempts = db
    .select()
    .from(deliveryAttempts)
    .where(eq(deliveryAttempts.messageId, dsql.placeholder("id")))
    .orderBy(asc(deliveryAttempts.id))
    .prepare("message_attempts");

  return {
    attempts: (id: number): Promise<AttemptRow[]> => attempts.execute({ id }),
  };
}

export type MessageQueries = ReturnType<typeof messageQueries>;
