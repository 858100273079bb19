-- Events get their feed order when they are written, not from a second write. 0012's sequencer UPDATEd every
-- committed event to give it a `position` (a non-HOT update: a new tuple and a new entry in every index), so a
-- delivered message cost two event inserts and two updates even with no endpoint. Now each event carries
-- `feed_xid`, the id of the transaction that wrote it, and the feed and the router read events in (feed_xid, id)
-- order up to the event horizon (messaging_event_horizon below): no transaction below it can still commit, so an
-- event never appears behind a cursor already handed out, and nothing is written after the insert.
-- Events numbered before this migration keep their `position` and come first in the feed, in that order (old
-- cursors still work); the few committed but not yet numbered ones get feed_xid 0, first of the new order, and
-- the router, which starts there, routes them.
ALTER TABLE "events" ADD COLUMN "feed_xid" xid8;
--> statement-breakpoint
UPDATE "events" SET "feed_xid" = '0' WHERE "position" IS NULL;
--> statement-breakpoint
DROP INDEX "events_unsequenced_idx";
--> statement-breakpoint
CREATE INDEX "events_order_idx" ON "events" USING btree ("feed_xid","id") WHERE "feed_xid" IS NOT NULL;
--> statement-breakpoint
-- The router's cursor: the last event routed, in the new order. (`position` stays for binaries of before 0017
-- that are still running during an upgrade; nothing reads it any more.)
ALTER TABLE "event_router" ADD COLUMN "feed_xid" xid8 DEFAULT '0' NOT NULL, ADD COLUMN "event_id" bigint DEFAULT 0 NOT NULL;
--> statement-breakpoint
-- The event horizon of the calling statement's snapshot: the oldest transaction of THIS database still running
-- (or the snapshot's xmax when none runs). Every event with feed_xid below it has committed or never will, and
-- no transaction that starts later gets a lower id. A running transaction of another database (another
-- application on the same server, a test run elsewhere) cannot write our events, so it does not hold the feed
-- back; one the activity view cannot place (it ended meanwhile, or is a prepared transaction) counts as ours.
-- STABLE, so it sees the snapshot of the statement that calls it.
CREATE FUNCTION "messaging_event_horizon"() RETURNS xid8 LANGUAGE sql STABLE AS $$
  SELECT least(pg_snapshot_xmax(s.snap), (
           SELECT min(x) FROM pg_snapshot_xip(s.snap) x
            WHERE NOT EXISTS (SELECT 1 FROM pg_stat_get_activity(NULL::int) a
                               WHERE a.backend_xid = xid(x)
                                 AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))))
    FROM (SELECT pg_current_snapshot() AS snap) s
$$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "messaging_message_inserted_events"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO events (feed_xid, type, subject, sequence, message_id, status, reason, provider, provider_message_id)
  SELECT pg_current_xact_id(), 'message.' || n.status, n.id::text, 1, n.id, n.status, n.status_reason, n.provider, n.provider_message_id
    FROM inserted n
   WHERE n.status <> 'sending'
   ORDER BY n.id;
  RETURN NULL;
END $$;
--> statement-breakpoint
-- A later event of a subject never sorts before an earlier one: this transaction may have drawn its id before the
-- one that wrote the previous event (a batch UPDATE that waited for the message's row lock), so feed_xid is at
-- least the previous event's. It is still at least this transaction's own id, so the horizon covers it.
CREATE OR REPLACE FUNCTION "messaging_message_status_event"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  prev record;
BEGIN
  SELECT e.sequence, e.feed_xid INTO prev FROM events e WHERE e.subject = NEW.id::text ORDER BY e.sequence DESC LIMIT 1;
  INSERT INTO events (feed_xid, type, subject, sequence, message_id, status, reason, provider, provider_message_id)
  VALUES (greatest(pg_current_xact_id(), prev.feed_xid), 'message.' || NEW.status, NEW.id::text, coalesce(prev.sequence, 0) + 1,
          NEW.id, NEW.status, NEW.status_reason, NEW.provider, NEW.provider_message_id);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "messaging_opt_out_event"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  o opt_outs;
  topic text;
  prev record;
BEGIN
  IF TG_OP = 'DELETE' THEN o := OLD; ELSE o := NEW; END IF;
  topic := 'recipient:' || o.from_addr || '>' || o.to_addr;
  SELECT e.sequence, e.feed_xid INTO prev FROM events e WHERE e.subject = topic ORDER BY e.sequence DESC LIMIT 1;
  INSERT INTO events (feed_xid, type, subject, sequence, data)
  VALUES (greatest(pg_current_xact_id(), prev.feed_xid),
          CASE WHEN TG_OP = 'DELETE' THEN 'recipient.opted_in' ELSE 'recipient.opted_out' END, topic,
          coalesce(prev.sequence, 0) + 1,
          jsonb_build_object('from', o.from_addr, 'to', o.to_addr, 'source', o.source, 'reason', o.reason,
                             'message_id', o.message_id::text,
                             'opted_out_at', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')));
  RETURN NULL;
END $$;
