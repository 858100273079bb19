CREATE TABLE "mock_provider_sends" (
	"idempotency_key" text PRIMARY KEY NOT NULL,
	"provider" text NOT NULL,
	"provider_message_id" text NOT NULL,
	"calls" integer DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "status_reason" text;--> statement-breakpoint
CREATE INDEX "messages_outbound_provider_idx" ON "messages" USING btree ("provider_message_id") WHERE direction = 'outbound' AND provider_message_id IS NOT NULL;