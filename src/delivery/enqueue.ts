/**
 * How a message outside the delivery queue enters it: the one SQL fragment the scheduling module
 * (modules/scheduling) needs of the queue, kept here with the queue it describes, so a change to the queue's shape
 * changes it in the same place (and the scheduling tests say whether it held).
 *
 * `enqueueSql(rel)`: a data-modifying CTE body putting the messages whose ids (bigint) are the `id` column of the
 * relation `rel` into the queue, due now. Their status must already be `queued`.
 *
 * `QUEUED_DUE` ($1: a bound): how many messages wait for a worker now (due, still `queued`), counted up to the
 * bound, through the due-time index. The promoter hands a backlog over only while this is small, so a fresh send
 * never finds more than about one promoter batch ahead of it.
 *
 * Taking a message back (a cancel) needs nothing from here: "queued and not claimed" is `status = 'queued'`
 * (see jobs.ts), and the claim drops the job of a message that left `queued` under it.
 */
export const enqueueSql = (rel: string) => `INSERT INTO delivery_jobs (message_id) SELECT id::bigint FROM ${rel}`;

export const QUEUED_DUE = `
  SELECT count(*)::int AS n FROM (
    SELECT 1 FROM delivery_jobs j JOIN messages m ON m.id = j.message_id
     WHERE j.run_at <= now() AND m.status = 'queued' LIMIT $1) waiting`;
