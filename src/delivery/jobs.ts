/**
 * The delivery queue in SQL: claiming due jobs, and writing a batch of results, each in one statement (one round
 * trip, one implicit transaction). Both run the same on PostgreSQL and the embedded PGlite.
 *
 * **The message is its own job** (migration 0016): an outbound message is in the queue exactly while its
 * `run_at` is set, and `attempts`, `locked_by` and `locked_until` are its job's columns. The send stores it with
 * `run_at = now()` (a scheduled one with none, until the promoter's move to `queued`), and the status write
 * (status.ts) takes it out of the queue, with its claim, as it leaves `queued`/`sending`. So a delivered message
 * costs one insert and two updates of its own row (the claim, a HOT update; the result), and no job row is
 * inserted, claimed or deleted beside it. `messages_due_idx` is partial on `run_at IS NOT NULL`: it holds only
 * the queue.
 *
 * **Queued and not claimed** (the contract with cancels and other writers): an outbound message is waiting in the
 * queue, not handed to any worker, exactly when `messages.status = 'queued'`. A claim moves it to `sending` in
 * the statement that leases it. So a conditional statement such as `UPDATE messages SET status = … WHERE id = $1
 * AND status = 'queued'` either commits first, and then the claim does not see the message (the status write took
 * it out of the queue, and the claim's row lock re-reads the row), or it finds `sending` and changes nothing. A
 * message retried after a provider error stays `sending`: it has been handed over at least once.
 *
 * `locked_by` names the claim: `<worker id>#<claim number>` (WORKER_OF gives the worker), so that a claim whose
 * answer was lost can be given back by its own name, whenever that statement runs (see releaseClaims).
 *
 * A job is due when `run_at <= now()` and nobody holds it: `locked_by` is unset, or names a worker proved gone
 * (liveness.ts: no session holds its advisory lock and it has not been seen for the takeover bound), or names a
 * process from before worker registration whose lease (`locked_until`) ran out. A live worker's claim never
 * expires, however long its provider call or its reconnect takes, so no second worker is handed a message
 * whose outcome the first one still holds. A claim sets only the lease and the status, which no index covers, so
 * PostgreSQL can update the row in place (HOT; see migration 0003). A claimed job that still names a holder was
 * claimed before and never got its result written: its provider may already have the message, so it is
 * retried with the same idempotency key and counted as uncertain.
 */
import type { SqlRunner } from "../db/runner.ts";
import { nullableTextArray, textArray } from "../db/sql-arrays.ts";
import { hasSqlState, SQLSTATE } from "../db/sql-state.ts";
import type { Channel } from "../domain/channel.ts";
import type { MessageStatus } from "../domain/message-status.ts";
import type { OptOutPair } from "../domain/opt-out.ts";
import { workerLockHeldSql } from "./liveness.ts";
import { changeParams, changesFromParams, IN_QUEUE_SQL, statusWriteCtes } from "./status.ts";

/** A claimed job with the message it delivers. */
export interface ClaimedJob {
  id: string;
  /** Provider calls recorded for this message before this claim. */
  attempts: number;
  /** When the message was accepted (ms), for the maximum age. */
  createdAt: number;
  /** Claimed before under a lease that ran out without a result: the provider may have it already. */
  uncertain: boolean;
  channel: Channel;
  from: string;
  to: string;
  body: string;
  attachments: string[];
  /** Email only: null for sms/mms (and for an email stored before subjects were). */
  subject: string | null;
  /** A scheduled message's `send_at` (ms), for the dispatch lag; null for one sent at once. */
  sendAt: number | null;
  /** An SMS/MMS whose recipient opted out of its sender after it was accepted: not to be sent. */
  optedOut: boolean;
}

/**
 * domain/address.ts `normalizePhone` in SQL (trim, keep the digits, keep a leading `+`), for the opt-out pair of
 * a stored SMS/MMS; a test holds the two to the same answers.
 */
export const normalizedPhoneSql = (expr: string) =>
  `(CASE WHEN btrim(${expr}, E' \t\n\r\f\v') LIKE '+%' THEN '+' ELSE '' END || regexp_replace(${expr}, '[^0-9]', '', 'g'))`;

/** The worker of a claim (`locked_by` is `<worker id>#<claim number>`; a claim of an older version has no `#`). */
export const WORKER_OF = (lockedBy: string) => `split_part(${lockedBy}, '#', 1)`;

/*
 * One statement: find the workers proved gone, pick due messages (skipping those another worker is claiming or
 * writing), lease them and move the queued ones to `sending`. The row lock re-reads each row at its latest version,
 * so a message a cancel or a final report took out of the queue after this statement's snapshot is not picked. A
 * due row whose status is no longer one of the queue's (written by something other than the status write) is
 * taken out of the queue instead. A text whose recipient opted out of its sender since it was accepted
 * (`opted_out`) is not sent: the caller fails it. A worker never takes over its own claims: it still holds their
 * outcomes. The age of a message counts from its `send_at` when it was scheduled, else from its acceptance.
 */
const claimStatement = (byChannel: boolean) => `
  WITH dead AS MATERIALIZED (
    SELECT w.id FROM delivery_workers w
     WHERE w.id <> $1 AND w.seen_at < now() - $4::int * interval '1 millisecond'
       AND (SELECT me.connected_at FROM delivery_workers me WHERE me.id = $1) < now() - $4::int * interval '1 millisecond'
       AND NOT ${workerLockHeldSql("w")}),
  due AS MATERIALIZED (
    SELECT m.id, m.locked_by AS previous_holder, m.status AS status_then
      FROM messages m
     WHERE m.run_at <= now()
       AND (m.locked_by IS NULL
            OR ${WORKER_OF("m.locked_by")} IN (SELECT id FROM dead)
            OR (m.locked_until <= now() AND ${WORKER_OF("m.locked_by")} <> $1
                AND NOT EXISTS (SELECT 1 FROM delivery_workers w WHERE w.id = ${WORKER_OF("m.locked_by")})))
       ${byChannel ? "AND m.channel = ANY($6::text[])" : ""}
     ORDER BY m.run_at
     LIMIT $2
       FOR NO KEY UPDATE OF m SKIP LOCKED),
  claimed AS (
    UPDATE messages m
       SET locked_by = $5, locked_until = now() + $3::int * interval '1 millisecond',
           status = 'sending', updated_at = CASE WHEN m.status = 'queued' THEN now() ELSE m.updated_at END
      FROM due
     WHERE m.id = due.id AND due.status_then IN ${IN_QUEUE_SQL}
    RETURNING m.id, m.attempts, coalesce(m.send_at, m.created_at) AS queued_at, due.previous_holder, due.status_then,
              m.channel, m.from_addr, m.to_addr, m.body, m.attachments, m.subject, m.send_at),
  dropped AS (
    UPDATE messages m SET run_at = NULL, locked_by = NULL, locked_until = NULL
      FROM due WHERE m.id = due.id AND due.status_then NOT IN ${IN_QUEUE_SQL})
  SELECT c.id::text AS id, c.attempts, (extract(epoch FROM c.queued_at) * 1000)::float8 AS created_ms,
         c.previous_holder IS NOT NULL AS uncertain, c.channel, c.from_addr, c.to_addr, c.body, c.attachments::text AS attachments, c.subject,
         (extract(epoch FROM c.send_at) * 1000)::float8 AS send_at_ms,
         c.status_then = 'queued' AS marked_sending,
         c.channel <> 'email' AND EXISTS (
           SELECT 1 FROM opt_outs o WHERE o.from_addr = ${normalizedPhoneSql("c.from_addr")} AND o.to_addr = ${normalizedPhoneSql("c.to_addr")}) AS opted_out
    FROM claimed c`;

const CLAIM_ANY = claimStatement(false);
const CLAIM_CHANNELS = claimStatement(true);

interface ClaimRow {
  id: string;
  attempts: number;
  created_ms: number;
  uncertain: boolean;
  marked_sending: boolean;
  opted_out: boolean;
  channel: Channel;
  from_addr: string;
  to_addr: string;
  body: string;
  attachments: string;
  subject: string | null;
  send_at_ms: number | null;
}

export interface ClaimOptions {
  /** The worker claiming. */
  holder: string;
  /** This claim's name, `<holder>#<number>`, written to `locked_by` (default `<holder>#0`). */
  claim?: string;
  limit: number;
  leaseMs: number;
  /** How long a worker may go unseen, its lock free, before its claims are taken over (liveness.ts). */
  takeoverMs: number;
  /** Only messages of these channels (pacing); undefined: all. */
  channels?: readonly Channel[];
}

/**
 * Claims up to `limit` due jobs for `holder` and marks their queued messages `sending`, in one statement.
 * Returns the jobs to deliver and how many messages moved to `sending`.
 */
export async function claimJobs(sql: SqlRunner, options: ClaimOptions): Promise<{ jobs: ClaimedJob[]; markedSending: number }> {
  const params: unknown[] = [options.holder, options.limit, options.leaseMs, options.takeoverMs, options.claim ?? `${options.holder}#0`];
  if (options.channels) params.push(textArray(options.channels));
  const rows = await sql.query<ClaimRow>(options.channels ? CLAIM_CHANNELS : CLAIM_ANY, params);
  let markedSending = 0;
  const jobs = rows.map((r): ClaimedJob => {
    if (r.marked_sending) markedSending += 1;
    return {
      id: r.id,
      attempts: r.attempts,
      createdAt: Number(r.created_ms),
      uncertain: r.uncertain,
      channel: r.channel,
      from: r.from_addr,
      to: r.to_addr,
      body: r.body,
      attachments: JSON.parse(r.attachments) as string[],
      subject: r.subject,
      sendAt: r.send_at_ms === null ? null : Number(r.send_at_ms),
      optedOut: r.opted_out,
    };
  });
  return { jobs, markedSending };
}

/** One provider call, for the attempt log. */
export interface AttemptRecord {
  messageId: string;
  attempt: number;
  provider: string;
  outcome: string;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  startedAt: Date;
}

/** A provider's report that the recipient unsubscribed from the sender (Twilio 21610), to record as an opt-out. */
export interface ProviderOptOut {
  pair: OptOutPair;
  /** What the provider said, kept as the opt-out's reason. */
  reason: string;
}

/** What became of one claimed job. */
export type JobResult =
  | { messageId: string; end: "sent"; provider: string; providerMessageId: string | null; calls: number }
  | { messageId: string; end: "failed"; reason: string; calls: number; optOut?: ProviderOptOut }
  | { messageId: string; end: "retry"; runAt: Date; reason: string | null; calls: number };

/*
 * One statement for a batch of results: the attempt log, the final statuses through the one status write (which
 * takes finished messages out of the queue with their claims, and inserts their events in the same statement:
 * statusWriteCtes), and the next run of the others. A job whose lease
 * another worker took over keeps that worker's lease: only its holder reschedules it. A job already out of the
 * queue (a final delivery report settled it) is simply not rescheduled. So is a message deleted during its call (DELETE /api/conversations/{id},
 * retention): its attempt is dropped, where the foreign key would have failed the whole batch. A delete that
 * commits after the statement's snapshot but before its foreign-key check still fails it; recordResults then
 * runs it again, when the new snapshot no longer shows the message. (Locking the messages here instead would
 * not do: a row lock skips the rows `moved` updates in the same statement.) A message the provider refused
 * because its recipient unsubscribed records the opt-out ($19–$22), keeping an opt-out already there.
 *
 * The two per-row checks of the attempt log end in `OFFSET 0`, which keeps each a correlated subquery. Without it a
 * generic plan made while the tables were small (a fresh database, or one not analyzed since it grew) hashes all of
 * `delivery_attempts`, and sometimes `messages`, at every write, a cost that grows with the tables instead of the
 * batch.
 *
 * Writing the same batch again is harmless, so a worker retries it after a lost connection without knowing
 * whether the first try committed: an attempt already recorded (same message, number and start) is not
 * inserted twice, a status already moved does not move again, a job already finished or released is not found.
 * Only a write that may repeat an earlier one ($23, `mayRepeat`) looks for its attempts in the log: no one else
 * writes this worker's attempts, so a first write cannot find them. The look costs an index probe per attempt
 * once the plan knows the table is large, but the generic plan a prepared statement keeps was made while the
 * table was small (a fresh database: the bench, a test, the first minutes of a new install), and there it is a
 * sequential scan of the whole log per attempt until autovacuum has the plan made again (measured: 8,000
 * messages in batches of 40 read 8.7 million attempt rows; the result write cost 98-248 ms of PostgreSQL CPU per
 * 1,000 messages instead of 30).
 */
const RECORD = `
  WITH attempts AS (
    INSERT INTO delivery_attempts (message_id, attempt, provider, outcome, status_code, error, duration_ms, started_at)
    SELECT a.message_id, a.attempt, a.provider, a.outcome, a.status_code, a.error, a.duration_ms, a.started_at
      FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::int[], $6::text[], $7::int[], $8::timestamptz[])
           WITH ORDINALITY AS a(message_id, attempt, provider, outcome, status_code, error, duration_ms, started_at, ord)
     WHERE EXISTS (SELECT 1 FROM messages m WHERE m.id = a.message_id OFFSET 0)
       AND (NOT $23::boolean
            OR NOT EXISTS (SELECT 1 FROM delivery_attempts d
                            WHERE d.message_id = a.message_id AND d.attempt = a.attempt AND d.started_at = a.started_at OFFSET 0))
     ORDER BY a.ord),
  change AS (${changesFromParams(9)}),
  ${statusWriteCtes("moved", "change", "$9::bigint[]")},
  rescheduled AS (
    UPDATE messages m
       SET run_at = r.run_at, attempts = m.attempts + r.calls, locked_by = NULL, locked_until = NULL
      FROM unnest($14::bigint[], $15::timestamptz[], $16::int[], $17::text[]) AS r(id, run_at, calls, reason)
     WHERE m.id = r.id AND m.id = ANY($14::bigint[]) AND m.run_at IS NOT NULL AND ${WORKER_OF("m.locked_by")} = $18),
  opted_out AS (
    INSERT INTO opt_outs (from_addr, to_addr, source, reason, message_id)
    SELECT DISTINCT ON (o.from_addr, o.to_addr) o.from_addr, o.to_addr, 'provider', o.reason, o.message_id
      FROM unnest($19::text[], $20::text[], $21::text[], $22::bigint[]) AS o(from_addr, to_addr, reason, message_id)
    ON CONFLICT (from_addr, to_addr) DO NOTHING)
  SELECT status, count(*)::int AS count FROM moved WHERE moved GROUP BY status`;

/** How many messages a result write moved to one status. */
export interface StatusMoves {
  status: MessageStatus;
  count: number;
}

/**
 * Writes a batch of results in one statement (one implicit transaction); returns how many messages it moved to
 * each status (counted for /metrics: a row per status, not per message, to decode and count). `mayRepeat`: some
 * of these results were in a write whose outcome is unknown (it failed after it may have committed), so their
 * attempts may be in the log already.
 */
export async function recordResults(
  sql: SqlRunner,
  holder: string,
  attempts: readonly AttemptRecord[],
  results: readonly JobResult[],
  options: { mayRepeat?: boolean } = {},
): Promise<StatusMoves[]> {
  const finished = results.filter((r) => r.end !== "retry");
  const retries = results.filter((r): r is Extract<JobResult, { end: "retry" }> => r.end === "retry");
  const optOuts = results.flatMap((r) => (r.end === "failed" && r.optOut ? [{ ...r.optOut, messageId: r.messageId }] : []));
  const params = [
    textArray(attempts.map((a) => a.messageId)),
    textArray(attempts.map((a) => String(a.attempt))),
    textArray(attempts.map((a) => a.provider)),
    textArray(attempts.map((a) => a.outcome)),
    nullableTextArray(attempts.map((a) => (a.statusCode === null ? null : String(a.statusCode)))),
    nullableTextArray(attempts.map((a) => a.error)),
    textArray(attempts.map((a) => String(a.durationMs))),
    textArray(attempts.map((a) => a.startedAt.toISOString())),
    ...changeParams(
      finished.map((r) =>
        r.end === "sent"
          ? { messageId: r.messageId, to: "sent" as const, provider: r.provider, providerMessageId: r.providerMessageId }
          : { messageId: r.messageId, to: "failed" as const, reason: r.end === "failed" ? r.reason : null },
      ),
    ),
    textArray(retries.map((r) => r.messageId)),
    textArray(retries.map((r) => r.runAt.toISOString())),
    textArray(retries.map((r) => String(r.calls))),
    // $17, the reason of a retry, is in the attempt log (delivery_attempts.error); the message keeps none.
    nullableTextArray(retries.map((r) => r.reason)),
    holder,
    textArray(optOuts.map((o) => o.pair.from)),
    textArray(optOuts.map((o) => o.pair.to)),
    textArray(optOuts.map((o) => o.reason)),
    textArray(optOuts.map((o) => o.messageId)),
    options.mayRepeat === true,
  ];
  for (let tries = 1; ; tries++) {
    try {
      return await sql.query<StatusMoves>(RECORD, params);
    } catch (err) {
      if (tries >= RECORD_TRIES || !hasSqlState(err, SQLSTATE.foreignKeyViolation)) throw err;
    }
  }
}

/** A message deleted under RECORD twice in a row is already unlikely; a third time is a real fault. */
const RECORD_TRIES = 3;


/** Gives back jobs this holder claimed but will not deliver (shutdown): due again at once, not uncertain. */
export async function releaseJobs(sql: SqlRunner, holder: string, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await sql.query(
    `UPDATE messages SET run_at = now(), locked_by = NULL, locked_until = NULL
      WHERE id = ANY($1::bigint[]) AND run_at IS NOT NULL AND ${WORKER_OF("locked_by")} = $2`,
    [textArray(ids), holder],
  );
}

/** The queue as an operator sees it: jobs not yet final, and how long the oldest due unclaimed one has waited. */
export async function queueSample(sql: SqlRunner): Promise<{ depth: number; oldestDueSeconds: number }> {
  const [row] = await sql.query<{ depth: number; oldest: number | null }>(
    `SELECT (SELECT count(*) FROM messages WHERE run_at IS NOT NULL)::int AS depth,
            (SELECT extract(epoch FROM now() - min(run_at)) FROM messages
              WHERE run_at <= now() AND locked_by IS NULL)::float8 AS oldest`,
  );
  return { depth: row?.depth ?? 0, oldestDueSeconds: Math.max(0, Number(row?.oldest ?? 0)) };
}

/**
 * Gives back the jobs of claims whose answer was lost with a connection (`claims`: their `locked_by` names), so
 * that no provider was called for them: due again at once, not uncertain. Only those claims' jobs are touched,
 * so this statement is right whenever it runs, even after later claims (a statement held in a dead
 * connection's buffer can reach the server late). It reads the queue through its index, not the whole table.
 */
export async function releaseClaims(sql: SqlRunner, claims: readonly string[]): Promise<void> {
  await sql.query("UPDATE messages SET locked_by = NULL, locked_until = NULL WHERE run_at IS NOT NULL AND locked_by = ANY($1::text[])", [
    textArray(claims),
  ]);
}
