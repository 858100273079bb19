-- The status write records its own events (issue 19). Until now every status change reached `events` through the
-- row trigger messages_status_event: per changed row a PL/pgSQL call, a lookup of the subject's last event and an
-- INSERT, each run through SPI at the end of the statement. That was about half of a delivered message's result
-- write in PostgreSQL (20 µs of CPU per message out of 43, batches of 200). The status write (delivery/status.ts)
-- now inserts the events of its moves itself, one INSERT for the whole batch, and counts them in
-- `status_events`; the trigger fires only for a status change that did not count one, so any other writer (a binary
-- of before 0020 still running during an upgrade, an operator's UPDATE) still gets its event from it.
ALTER TABLE "messages" ADD COLUMN "status_events" integer DEFAULT 0 NOT NULL;
--> statement-breakpoint
DROP TRIGGER "messages_status_event" ON "messages";
--> statement-breakpoint
CREATE TRIGGER "messages_status_event" AFTER UPDATE OF "status" ON "messages"
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status <> 'sending' AND OLD.status_events = NEW.status_events)
  EXECUTE FUNCTION "messaging_message_status_event"();
--> statement-breakpoint
-- The last event of a subject, read with a snapshot of its own: VOLATILE, so PostgreSQL neither inlines it into
-- the calling statement nor lets it share that statement's snapshot. A status write that waited for a message's
-- row lock must see the event the lock's holder committed meanwhile (as the trigger, which runs after the
-- statement, did), or its own event would repeat that one's sequence.
CREATE FUNCTION "messaging_last_event"(text) RETURNS TABLE ("sequence" integer, "feed_xid" xid8, "status" text)
  LANGUAGE sql VOLATILE AS $$
  SELECT e.sequence, e.feed_xid, e.status FROM events e WHERE e.subject = $1 ORDER BY e.sequence DESC LIMIT 1
$$;
