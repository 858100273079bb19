-- Cheaper pages for delivery (issue 19).
--
-- Room in each `messages` page for the claim's new row version. A claim sets `sending` and the lease, no indexed
-- column, so it is a HOT update (no entry in any of the table's indexes) exactly when the row's page has room for the
-- new version. At fillfactor 85 (migration 0003) a page of about 38 messages had room for about 6 versions, so most
-- claims wrote an entry into each of four indexes. At 50 (about 22 messages a page, room for as many versions) a
-- drain of 20,000 on one process made 18,198 of its 20,000 claims HOT instead of 3,337, and wrote 17% less WAL per
-- delivered message (1,895 bytes against 2,280). The heap takes about 1.7 times the pages for it; the freed versions
-- are pruned in place, and a later `delivered` report, also HOT, finds the room again. Applies to pages written
-- from now on.
ALTER TABLE "messages" SET (fillfactor = 50);--> statement-breakpoint
-- The built-in mock provider's ledger stands for a provider's own memory of what it accepted, not for anything of
-- ours a commit must keep: it is written without WAL (about 300 bytes per delivered message). A crash of the
-- service keeps it; a crash of PostgreSQL itself empties it, as if the mock provider had been replaced, so a
-- message whose result was not yet written is accepted again then (a new mock id), never lost.
ALTER TABLE "mock_provider_sends" SET UNLOGGED;
