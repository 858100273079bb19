CREATE TABLE "conversation_counters" (
	"stripe" smallint PRIMARY KEY NOT NULL,
	"conversations" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE INDEX "messages_timestamp_idx" ON "messages" USING btree ("timestamp");--> statement-breakpoint
-- Sixteen stripes (messages/repository.ts picks one per session); the first starts at today's exact count so
-- that an existing database keeps an exact total from the first request after the upgrade.
INSERT INTO "conversation_counters" ("stripe", "conversations")
SELECT s, CASE WHEN s = 0 THEN (SELECT count(*) FROM "conversations") ELSE 0 END FROM generate_series(0, 15) AS s;
