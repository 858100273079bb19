CREATE TABLE "opt_outs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"from_addr" text NOT NULL,
	"to_addr" text NOT NULL,
	"source" text NOT NULL,
	"reason" text NOT NULL,
	"message_id" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX "opt_outs_pair_uq" ON "opt_outs" USING btree ("from_addr","to_addr");--> statement-breakpoint
CREATE INDEX "opt_outs_recent_idx" ON "opt_outs" USING btree ("created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);
