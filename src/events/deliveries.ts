/**
 * The event delivery queue in SQL: routing new events to the endpoints that subscribe to them, claiming due
 * deliveries under a lease, and writing a batch of outcomes, each in one statement. The same lease and
 * `SKIP LOCKED` machinery as the message queue (delivery/jobs.ts), on its own table, so a slow or dead endpoint
 * holds back no send and no other endpoint.
 */
import type { SqlRunner } from "../db/runner.ts";
import { nullableTextArray, textArray } from "../db/sql-arrays.ts";
import { AT_EVENT, type ClientEvent, completeEvent, EVENT_JSON, REASON } from "./feed.ts";

/*
 * One statement, the router: take the router's row (SKIP LOCKED: one instance routes at a time, the others find
 * nothing), read the events after its cursor in feed order up to the event horizon (feed.ts), make a delivery of
 * each for every endpoint whose subscription covers it (domain/event-types.ts subscriptionCovers, in SQL), disabled
 * endpoints included (their events wait for `enable`), and move the cursor to the last one read. Reads only, but
 * for the deliveries and that one row: with no endpoint an event costs nothing here after its insert. Only when
 * some event lies after the cursor does a round ask for the horizon (a look at every backend's transaction) and
 * lock the router's row (a write, so a commit that waits for the WAL flush): an idle round reads two pages. An event
 * whose transaction commits late sorts below the horizon only once it has committed, never behind the cursor. The
 * cursor only moves forward: an instance whose snapshot is older than the last move reads nothing new. The peek
 * asks for the first event after the cursor in feed order (ORDER BY … LIMIT 1), so it is one probe of
 * `events_order_idx`; written as a plain EXISTS join the planner scanned the whole events table every round.
 */
const ROUTE = `
  WITH peek AS MATERIALIZED (SELECT feed_xid, event_id FROM event_router WHERE id = 1),
  h AS MATERIALIZED (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM peek p, LATERAL (
                               SELECT 1 FROM events e WHERE e.feed_xid IS NOT NULL AND (e.feed_xid, e.id) > (p.feed_xid, p.event_id)
                                ORDER BY e.feed_xid, e.id LIMIT 1) next)
                THEN messaging_event_horizon() END AS horizon),
  cursor AS (SELECT r.feed_xid, r.event_id FROM event_router r, h WHERE r.id = 1 AND h.horizon IS NOT NULL FOR UPDATE OF r SKIP LOCKED),
  batch AS MATERIALIZED (
    SELECT e.id, e.type, e.subject, e.sequence, e.feed_xid
      FROM cursor c, LATERAL (
        SELECT id, type, subject, sequence, feed_xid FROM events
         WHERE feed_xid IS NOT NULL AND (feed_xid, id) > (c.feed_xid, c.event_id) AND feed_xid < (SELECT horizon FROM h)
         ORDER BY feed_xid, id LIMIT $1) e),
  routed AS (
    INSERT INTO event_deliveries (endpoint_id, event_id, subject, sequence)
    SELECT ep.id, b.id, b.subject, b.sequence FROM batch b JOIN event_endpoints ep
        ON ep.events && ARRAY['*', b.type]
        OR ('message.status' = ANY(ep.events) AND b.type LIKE 'message.%' AND b.type <> 'message.received')
    ON CONFLICT DO NOTHING
    RETURNING endpoint_id),
  moved AS (
    UPDATE event_router r SET feed_xid = last.feed_xid, event_id = last.id
      FROM (SELECT feed_xid, id FROM batch ORDER BY feed_xid DESC, id DESC LIMIT 1) last
     WHERE r.id = 1 AND (last.feed_xid, last.id) > (r.feed_xid, r.event_id))
  SELECT b.type, count(*)::int AS n, (SELECT count(*) FROM routed)::int AS routed FROM batch b GROUP BY b.type`;

/** What one routing step did: events read per type, and deliveries made. */
export interface Routed {
  byType: Map<string, number>;
  events: number;
  deliveries: number;
}

/** Routes up to `limit` new events; `events` is 0 when there was nothing new (or another instance was routing). */
export async function routeEvents(sql: SqlRunner, limit: number): Promise<Routed> {
  const rows = await sql.query<{ type: string; n: number; routed: number }>(ROUTE, [limit]);
  const byType = new Map(rows.map((r) => [r.type, r.n]));
  return { byType, events: rows.reduce((sum, r) => sum + r.n, 0), deliveries: rows[0]?.routed ?? 0 };
}

/** A claimed delivery. */
export interface ClaimedDelivery {
  endpointId: string;
  eventId: string;
  /** Tries before this one. */
  attempts: number;
  /** When its retry window started (ms): routing, or the last `enable`. */
  firstAt: number;
  /** The body to POST, rendered by the claim itself; undefined when the event was purged meanwhile. */
  event: ClientEvent | undefined;
}

/*
 * Per endpoint (with how many it may take now, $1/$2), its due deliveries, oldest first, skipping any whose
 * subject (the message) has an earlier event for this endpoint that was never tried yet: events of one message
 * go out in sequence order, and a later one overtakes only an earlier one that is being retried. An earlier one
 * held by another claim right now has no try recorded yet, so it blocks the later one too. Disabled endpoints
 * take nothing. (`endpoint_id + 0` keeps that check on event_deliveries_subject_idx: a table filled since its last
 * ANALYZE looks empty to the planner, which then probed the due index by endpoint alone, once per due row, and a
 * 20,000-event backlog took minutes per claim.)
 */
const CLAIM = `
  WITH caps AS (SELECT * FROM unnest($1::bigint[], $2::int[]) AS c(endpoint_id, cap)),
  due AS (
    SELECT d.endpoint_id, d.event_id
      FROM caps c
      JOIN event_endpoints ep ON ep.id = c.endpoint_id AND ep.disabled_at IS NULL
      CROSS JOIN LATERAL (
        SELECT d.endpoint_id, d.event_id FROM event_deliveries d
         WHERE d.endpoint_id = c.endpoint_id AND d.gave_up_at IS NULL AND d.run_at <= now()
           AND (d.locked_until IS NULL OR d.locked_until <= now())
           AND NOT EXISTS (
             SELECT 1 FROM event_deliveries p
              WHERE p.subject = d.subject AND p.endpoint_id + 0 = d.endpoint_id AND p.sequence < d.sequence
                AND p.attempts = 0 AND p.gave_up_at IS NULL)
         ORDER BY d.run_at, d.event_id
         LIMIT c.cap
         FOR UPDATE OF d SKIP LOCKED) d),
  claimed AS (
    UPDATE event_deliveries d SET locked_by = $3, locked_until = now() + $4::int * interval '1 millisecond'
      FROM due WHERE d.endpoint_id = due.endpoint_id AND d.event_id = due.event_id
    RETURNING d.endpoint_id, d.event_id, d.attempts, d.first_at)
  SELECT c.endpoint_id::text AS endpoint_id, c.event_id::text AS event_id, c.attempts,
         (extract(epoch FROM c.first_at) * 1000)::float8 AS first_ms,
         ${EVENT_JSON}::text AS event, ${REASON} AS reason
    FROM claimed c LEFT JOIN events e ON e.id = c.event_id
    ${AT_EVENT}`;

/*
 * When the next delivery of an enabled endpoint falls due (the earliest `run_at` of what it has not given up),
 * null when none waits: one probe of event_deliveries_due_idx per endpoint, however long its backlog. Read by an
 * idle worker on the embedded database (worker.ts), so it sleeps until then instead of polling. A row still held
 * by a lease counts from its `run_at`: an idle worker holds none, so such a lease is a previous process's, and the
 * worker polls until it runs out, as before.
 */
const NEXT_DUE = `
  SELECT (extract(epoch FROM min(n.run_at)) * 1000)::float8 AS due_ms
    FROM event_endpoints ep
    CROSS JOIN LATERAL (
      SELECT d.run_at FROM event_deliveries d
       WHERE d.endpoint_id = ep.id AND d.gave_up_at IS NULL
       ORDER BY d.run_at LIMIT 1) n
   WHERE ep.disabled_at IS NULL`;

/** When (ms) the next delivery of an enabled endpoint falls due; null when none waits. */
export async function nextDeliveryDue(sql: SqlRunner): Promise<number | null> {
  const [row] = await sql.query<{ due_ms: number | null }>(NEXT_DUE);
  return row?.due_ms === null || row?.due_ms === undefined ? null : Number(row.due_ms);
}

/** Claims due deliveries for `holder`, at most `caps.get(endpoint)` of each endpoint, with their bodies rendered. */
export async function claimDeliveries(sql: SqlRunner, caps: ReadonlyMap<string, number>, holder: string, leaseMs: number, snippetLength = 64): Promise<ClaimedDelivery[]> {
  const open = [...caps].filter(([, cap]) => cap > 0);
  if (open.length === 0) return [];
  const rows = await sql.query<{ endpoint_id: string; event_id: string; attempts: number; first_ms: number; event: string | null; reason: string | null }>(CLAIM, [
    textArray(open.map(([id]) => id)),
    textArray(open.map(([, cap]) => String(cap))),
    holder,
    leaseMs,
  ]);
  return rows.map((r) => ({
    endpointId: r.endpoint_id,
    eventId: r.event_id,
    attempts: r.attempts,
    firstAt: Number(r.first_ms),
    event: r.event === null ? undefined : completeEvent({ event: r.event, reason: r.reason }, snippetLength),
  }));
}

/** How one POST of an event ended. */
export type DeliveryOutcome = "delivered" | "failed" | "gone";

export interface DeliveryResult {
  endpointId: string;
  eventId: string;
  outcome: DeliveryOutcome;
  statusCode: number | null;
  error: string | null;
  /** When to try again (failed only). */
  retryAt: Date | null;
  /** The retry window has run out: keep the delivery for `enable`, but stop trying. */
  giveUp: boolean;
}

/*
 * One statement per batch of outcomes (in completion order): a delivered event leaves the queue; a failed one is
 * due again later (or given up, kept for `enable`); `410 Gone` disables its endpoint at once and leaves the event
 * due (sent after `enable`). Only the holder's lease is honoured: a delivery another worker took over after this
 * one's lease ran out is that worker's. Each endpoint remembers its latest outcome, and since when its deliveries
 * have all failed; one failing longer than $10 ms is disabled. Returns the endpoints this batch disabled.
 */
const RECORD = `
  WITH r AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::int[], $5::text[], $6::timestamptz[], $7::bool[])
           WITH ORDINALITY AS r(endpoint_id, event_id, outcome, status_code, error, retry_at, give_up, ord)),
  delivered AS (
    DELETE FROM event_deliveries d USING r
     WHERE r.outcome = 'delivered' AND d.endpoint_id = r.endpoint_id AND d.event_id = r.event_id AND d.locked_by = $8),
  retried AS (
    UPDATE event_deliveries d
       SET attempts = d.attempts + CASE WHEN r.outcome = 'gone' THEN 0 ELSE 1 END,
           run_at = coalesce(r.retry_at, now()), last_error = r.error,
           gave_up_at = CASE WHEN r.give_up THEN now() END, locked_by = NULL, locked_until = NULL
      FROM r
     WHERE r.outcome <> 'delivered' AND d.endpoint_id = r.endpoint_id AND d.event_id = r.event_id AND d.locked_by = $8),
  latest AS (SELECT DISTINCT ON (endpoint_id) * FROM r ORDER BY endpoint_id, ord DESC),
  summary AS (
    SELECT endpoint_id, bool_or(outcome = 'delivered') AS ok, bool_or(outcome = 'gone') AS gone FROM r GROUP BY endpoint_id),
  updated AS (
    UPDATE event_endpoints ep
       SET failing_since = CASE WHEN s.ok THEN NULL ELSE coalesce(ep.failing_since, now()) END,
           disabled_at = CASE WHEN ep.disabled_at IS NOT NULL THEN ep.disabled_at
                              WHEN s.gone OR (NOT s.ok AND ep.failing_since < now() - $9::bigint * interval '1 millisecond') THEN now() END,
           disabled_reason = CASE WHEN ep.disabled_at IS NOT NULL THEN ep.disabled_reason
                                  WHEN s.gone THEN 'the endpoint answered 410 Gone'
                                  WHEN NOT s.ok AND ep.failing_since < now() - $9::bigint * interval '1 millisecond'
                                    THEN 'every delivery failed since ' || to_char(ep.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END,
           last_attempt_at = now(), last_outcome = l.outcome, last_status_code = l.status_code, last_error = l.error
      FROM summary s JOIN latest l USING (endpoint_id)
     WHERE ep.id = s.endpoint_id
    RETURNING ep.id::text AS id, ep.disabled_at IS NOT NULL AND ep.disabled_at = now() AS disabled_now, ep.disabled_reason)
  SELECT id, disabled_reason FROM updated WHERE disabled_now`;

/** Writes a batch of outcomes; returns the endpoints it disabled, with why. */
export async function recordDeliveries(
  sql: SqlRunner,
  holder: string,
  results: readonly DeliveryResult[],
  disableAfterMs: number,
): Promise<{ id: string; disabled_reason: string }[]> {
  if (results.length === 0) return [];
  return sql.query(RECORD, [
    textArray(results.map((r) => r.endpointId)),
    textArray(results.map((r) => r.eventId)),
    textArray(results.map((r) => r.outcome)),
    nullableTextArray(results.map((r) => (r.statusCode === null ? null : String(r.statusCode)))),
    nullableTextArray(results.map((r) => r.error)),
    nullableTextArray(results.map((r) => r.retryAt?.toISOString() ?? null)),
    textArray(results.map((r) => String(r.giveUp))),
    holder,
    disableAfterMs,
  ]);
}

/** Gives back deliveries this holder claimed but will not send (shutdown): due again at once. */
export async function releaseDeliveries(sql: SqlRunner, holder: string): Promise<void> {
  await sql.query("UPDATE event_deliveries SET locked_by = NULL, locked_until = NULL WHERE locked_by = $1", [holder]);
}

/** Per endpoint: deliveries not yet made (given-up ones included) and the age of the oldest due one. */
export interface EndpointBacklog {
  endpointId: string;
  pending: number;
  oldestSeconds: number;
  disabled: boolean;
}

export async function endpointBacklog(sql: SqlRunner): Promise<EndpointBacklog[]> {
  const rows = await sql.query<{ id: string; pending: number; oldest: number | null; disabled: boolean }>(
    `SELECT ep.id::text AS id, ep.disabled_at IS NOT NULL AS disabled,
            (SELECT count(*) FROM event_deliveries d WHERE d.endpoint_id = ep.id)::int AS pending,
            (SELECT extract(epoch FROM now() - min(e.created_at)) FROM event_deliveries d JOIN events e ON e.id = d.event_id
              WHERE d.endpoint_id = ep.id AND d.gave_up_at IS NULL)::float8 AS oldest
       FROM event_endpoints ep ORDER BY ep.id`,
  );
  return rows.map((r) => ({ endpointId: r.id, pending: r.pending, oldestSeconds: Math.max(0, Number(r.oldest ?? 0)), disabled: r.disabled }));
}

/**
 * How long the event horizon (feed.ts) has held committed events back: the age of the first committed event at or
 * above it, in feed order, 0 when there is none. A few milliseconds normally; a write transaction of this database
 * left open makes it grow until the transaction ends.
 */
export async function feedHeldBackSeconds(sql: SqlRunner): Promise<number> {
  const [row] = await sql.query<{ seconds: number }>(
    `SELECT greatest(0, extract(epoch FROM now() - created_at))::float8 AS seconds FROM events
      WHERE feed_xid IS NOT NULL AND feed_xid >= messaging_event_horizon() ORDER BY feed_xid, id LIMIT 1`,
  );
  return Number(row?.seconds ?? 0);
}

/**
 * One batch of retention: events older than `days` days (their undelivered deliveries go with them, by the
 * foreign key). The creation times are in a BRIN index, so finding the old ones reads the table's oldest pages.
 */
export async function purgeEventBatch(sql: SqlRunner, days: number, limit: number): Promise<number> {
  const [row] = await sql.query<{ n: number }>(
    `WITH gone AS (DELETE FROM events WHERE id IN (
        SELECT id FROM events WHERE created_at < now() - $1::int * interval '1 day' ORDER BY id LIMIT $2) RETURNING 1)
     SELECT count(*)::int AS n FROM gone`,
    [days, limit],
  );
  return row?.n ?? 0;
}
