/**
 * How a message outside the delivery queue enters it, for the scheduling module (modules/scheduling), kept here
 * with the queue it describes.
 *
 * The message row is its own job (delivery/jobs.ts): a message is in the queue while its `run_at` is set, and the
 * status write (status.ts) sets it, due now, as the message moves into `queued`. So the promoter needs nothing
 * but that status write: a scheduled message it moves to `queued` is in the queue in the same statement.
 *
 * `QUEUED_DUE` ($1: a bound): how many messages wait for a worker now (due, still `queued`), counted up to the
 * bound, through the due index. The promoter hands a backlog over only while this is small, so a fresh send
 * never finds more than about one promoter batch ahead of it.
 *
 * Taking a message back (a cancel) needs nothing from here either: "queued and not claimed" is
 * `status = 'queued'` (see jobs.ts), and the status write that cancels takes the message out of the queue.
 */
export const QUEUED_DUE = `
  SELECT count(*)::int AS n FROM (
    SELECT 1 FROM messages WHERE run_at <= now() AND status = 'queued' LIMIT $1) waiting`;
