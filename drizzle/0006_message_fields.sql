ALTER TABLE "messages" ADD COLUMN "subject" text;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "segments" smallint;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "encoding" text;