-- The message row is its own delivery job (issue 19): the queue's columns move from `delivery_jobs` onto
-- `messages`, so a send inserts one row instead of two, a claim updates one row instead of two, and a result
-- updates one instead of updating one and deleting another. A message is in the queue exactly while `run_at`
-- is set: the send sets it (due at once), the promoter's move to `queued` sets it, and the status write clears it
-- with the lease when the message becomes final. The due index is partial on `run_at IS NOT NULL`, so it holds
-- only the queue, and a claim (which sets the lease and `sending`, no indexed column) stays a HOT update.
ALTER TABLE "messages" ADD COLUMN "run_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "attempts" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "locked_by" text;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "locked_until" timestamp with time zone;--> statement-breakpoint
-- Jobs waiting when this runs carry over with their due time, their calls so far and their holder's claim, so a
-- message a worker of the previous version holds is still its own (or taken over once that worker is proved
-- gone) and is never handed over twice. The job of a message already final is dropped, as a claim would have.
UPDATE "messages" m
   SET "run_at" = j."run_at", "attempts" = j."attempts", "locked_by" = j."locked_by", "locked_until" = j."locked_until"
  FROM "delivery_jobs" j
 WHERE j."message_id" = m."id" AND m."status" IN ('queued', 'sending');--> statement-breakpoint
DROP TABLE "delivery_jobs";--> statement-breakpoint
CREATE INDEX "messages_due_idx" ON "messages" USING btree ("run_at") WHERE "run_at" IS NOT NULL;
