/**
 * How a message outside the delivery queue enters it: the one SQL fragment the scheduling module
 * (modules/scheduling) needs of the queue, kept here with the queue it describes, so a change to the queue's shape
 * changes it in the same place (and the scheduling tests say whether it held).
 *
 * `enqueueSql(rel)`: a data-modifying CTE body putting the messages whose ids (bigint) are the `id` column of the
 * relation `rel` into the queue, due now. Their status must already be `queued`.
 *
 * Taking a message back (a cancel) needs nothing from here: "queued and not claimed" is `status = 'queued'`
 * (see jobs.ts), and the claim drops the job of a message that left `queued` under it.
 */
export const enqueueSql = (rel: string) => `INSERT INTO delivery_jobs (message_id) SELECT id::bigint FROM ${rel}`;
