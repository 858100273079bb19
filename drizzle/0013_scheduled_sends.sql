-- Scheduled sends (SPEC §3 `send_at`). The message keeps its `send_at` for the item; `scheduled_messages` holds a
-- row only while the message waits, so the promoter's scan (modules/scheduling) reads pending rows alone and its
-- index never covers `messages.status`: a status change stays a HOT update (migration 0003). The row goes with
-- its message (retention, DELETE /api/conversations/{id}) through the cascade.
ALTER TABLE "messages" ADD COLUMN "send_at" timestamp with time zone;--> statement-breakpoint
CREATE TABLE "scheduled_messages" (
	"message_id" bigint PRIMARY KEY NOT NULL REFERENCES "messages"("id") ON DELETE CASCADE,
	"send_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "scheduled_messages_due_idx" ON "scheduled_messages" USING btree ("send_at","message_id");
