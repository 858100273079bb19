-- A stored idempotent response replays the bytes of its first answer. `response_body` is jsonb, which keeps an
-- object's keys sorted by length (then bytes), so a replay rebuilt from it put them in another order than the answer
-- it repeats; the send routes put the keys of their 202 back in order by hand. The response is now also stored as
-- the text of that answer, and a replay is read from it, keys in their first order, whatever the route. A nullable
-- column added without a default is a change of the catalog only: the table is not rewritten.
--
-- `response_body` is still written, so a binary of before 0021 still running during an upgrade replays what a new
-- one stored; a row stored before 0021 has no text and is read from `response_body`, as before.
ALTER TABLE "idempotency_keys" ADD COLUMN "response_text" text;
