/**
 * How a message outside the delivery queue enters it, and how one still untouched in it leaves: the two SQL
 * fragments the scheduling module (modules/scheduling) needs, kept here with the queue they describe, so a
 * change to the queue's shape changes them in the same place (and the scheduling tests say whether it held).
 *
 * - `enqueueSql(rel)`: a data-modifying CTE body putting the messages whose ids (bigint) are the `id` column of
 *   the relation `rel` into the queue, due now. Their status must already be `queued`.
 * - `withdrawUnclaimedCtes(idParam)`: CTEs (`free`, then `withdrawn` returning `message_id`) taking message
 *   `idParam` out of the queue when it is `queued` and no worker has claimed it. They must lose cleanly to a
 *   concurrent claim: the claim holds the job row (`FOR UPDATE … SKIP LOCKED`), leases it and marks the message
 *   `sending` in one statement; `free` skips a job or message row another transaction holds and takes nothing
 *   (the caller looks again with a fresh snapshot, which shows the claim's result), and a claim that comes
 *   second skips the job row `free` holds and never sees it again. `free` never waits: waiting on the message
 *   row while holding the job would deadlock with a result write, which updates the message and then deletes
 *   the job. Locking the message row too matters: a job retried after a call has no holder again, but its
 *   message is `sending` by then. A job that names a holder was claimed, even if its lease ran out (the
 *   provider may have the message), and is never withdrawn.
 */
export const enqueueSql = (rel: string) => `INSERT INTO delivery_jobs (message_id) SELECT id::bigint FROM ${rel}`;

export const withdrawUnclaimedCtes = (idParam: string) => `
  free AS (
    SELECT j.message_id FROM delivery_jobs j JOIN messages m ON m.id = j.message_id
     WHERE j.message_id = ${idParam} AND j.locked_by IS NULL AND m.status = 'queued'
       FOR UPDATE OF j, m SKIP LOCKED),
  withdrawn AS (DELETE FROM delivery_jobs j USING free WHERE j.message_id = free.message_id RETURNING j.message_id)`;
