-- One index on the attempt log instead of two (issue 19). `delivery_attempts` had a primary key on `id` and an
-- index on (message_id, id); every attempt wrote an entry into both. Nothing looks an attempt up by `id` alone (nor
-- does any foreign key point at it); every reader asks by message (`GET /api/messages/{id}`, the result write's
-- "already recorded" check, a conversation's or retention's delete), which (message_id, id) serves. So that pair
-- becomes the primary key and the other index goes: one btree insert less per provider call. `id` stays unique
-- in practice (a sequence); the key only no longer says so on its own.
ALTER TABLE "delivery_attempts" DROP CONSTRAINT "delivery_attempts_pkey";--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD CONSTRAINT "delivery_attempts_message_id_id_pk" PRIMARY KEY ("message_id", "id");--> statement-breakpoint
DROP INDEX "delivery_attempts_message_idx";
