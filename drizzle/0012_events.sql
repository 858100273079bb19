-- Events to the client app (SPEC §10): a transactional outbox written by triggers, so every statement that
-- changes a message's status or stores a message (the send, the claim, the results, delivery reports, inbound
-- webhooks, cancels) and every opt-out write records its event in its own transaction, and no writer can forget to.
CREATE TABLE "events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"public_id" uuid DEFAULT gen_random_uuid() NOT NULL,
	"position" bigint,
	"type" text NOT NULL,
	"subject" text NOT NULL,
	"sequence" integer NOT NULL,
	"message_id" bigint,
	"status" text,
	"reason" text,
	"provider" text,
	"provider_message_id" text,
	"data" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "events_feed_idx" ON "events" USING btree ("position") WHERE "position" IS NOT NULL;
--> statement-breakpoint
CREATE INDEX "events_unsequenced_idx" ON "events" USING btree ("id") WHERE "position" IS NULL;
--> statement-breakpoint
CREATE INDEX "events_subject_idx" ON "events" USING btree ("subject","sequence");
--> statement-breakpoint
CREATE INDEX "events_created_brin" ON "events" USING brin ("created_at");
--> statement-breakpoint
CREATE TABLE "event_endpoints" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"url" text NOT NULL,
	"events" text[] NOT NULL,
	"description" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"disabled_at" timestamp with time zone,
	"disabled_reason" text,
	"failing_since" timestamp with time zone,
	"last_attempt_at" timestamp with time zone,
	"last_outcome" text,
	"last_status_code" integer,
	"last_error" text
);
--> statement-breakpoint
CREATE TABLE "event_deliveries" (
	"endpoint_id" bigint NOT NULL REFERENCES "event_endpoints"("id") ON DELETE CASCADE,
	"event_id" bigint NOT NULL REFERENCES "events"("id") ON DELETE CASCADE,
	"subject" text NOT NULL,
	"sequence" integer NOT NULL,
	"run_at" timestamp with time zone DEFAULT now() NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"first_at" timestamp with time zone DEFAULT now() NOT NULL,
	"gave_up_at" timestamp with time zone,
	"locked_by" text,
	"locked_until" timestamp with time zone,
	"last_error" text,
	CONSTRAINT "event_deliveries_pk" PRIMARY KEY("endpoint_id","event_id")
);
--> statement-breakpoint
CREATE INDEX "event_deliveries_due_idx" ON "event_deliveries" USING btree ("endpoint_id","run_at","event_id") WHERE "gave_up_at" IS NULL;
--> statement-breakpoint
CREATE INDEX "event_deliveries_subject_idx" ON "event_deliveries" USING btree ("subject","endpoint_id","sequence");
--> statement-breakpoint
CREATE INDEX "event_deliveries_event_idx" ON "event_deliveries" USING btree ("event_id");
--> statement-breakpoint
CREATE TABLE "event_router" (
	"id" integer PRIMARY KEY NOT NULL CHECK ("id" = 1),
	"position" bigint NOT NULL
);
--> statement-breakpoint
INSERT INTO "event_router" ("id", "position") VALUES (1, 0);
--> statement-breakpoint
CREATE FUNCTION "messaging_message_inserted_events"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO events (type, subject, sequence, message_id, status, reason, provider, provider_message_id)
  SELECT 'message.' || n.status, n.id::text, 1, n.id, n.status, n.status_reason, n.provider, n.provider_message_id
    FROM inserted n
   WHERE n.status <> 'sending'
   ORDER BY n.id;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "messages_inserted_events" AFTER INSERT ON "messages"
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION "messaging_message_inserted_events"();
--> statement-breakpoint
CREATE FUNCTION "messaging_message_status_event"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO events (type, subject, sequence, message_id, status, reason, provider, provider_message_id)
  VALUES ('message.' || NEW.status, NEW.id::text,
          coalesce((SELECT max(e.sequence) FROM events e WHERE e.subject = NEW.id::text), 0) + 1,
          NEW.id, NEW.status, NEW.status_reason, NEW.provider, NEW.provider_message_id);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "messages_status_event" AFTER UPDATE OF "status" ON "messages"
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status <> 'sending')
  EXECUTE FUNCTION "messaging_message_status_event"();
--> statement-breakpoint
CREATE FUNCTION "messaging_opt_out_event"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  o opt_outs;
  topic text;
BEGIN
  IF TG_OP = 'DELETE' THEN o := OLD; ELSE o := NEW; END IF;
  topic := 'recipient:' || o.from_addr || '>' || o.to_addr;
  INSERT INTO events (type, subject, sequence, data)
  VALUES (CASE WHEN TG_OP = 'DELETE' THEN 'recipient.opted_in' ELSE 'recipient.opted_out' END, topic,
          coalesce((SELECT max(e.sequence) FROM events e WHERE e.subject = topic), 0) + 1,
          jsonb_build_object('from', o.from_addr, 'to', o.to_addr, 'source', o.source, 'reason', o.reason,
                             'message_id', o.message_id::text,
                             'opted_out_at', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')));
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "opt_outs_events" AFTER INSERT OR DELETE ON "opt_outs"
  FOR EACH ROW EXECUTE FUNCTION "messaging_opt_out_event"();
