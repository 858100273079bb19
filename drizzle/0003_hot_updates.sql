-- Room in each page for updates that change no indexed column, so PostgreSQL can make them HOT (heap-only:
-- no new index entries). Delivery updates every outbound message to `sending` and every job to claim it;
-- with full pages each such update also wrote an entry into every index of the table. Applies to pages
-- written from now on.
ALTER TABLE "messages" SET (fillfactor = 85);--> statement-breakpoint
ALTER TABLE "delivery_jobs" SET (fillfactor = 70);
