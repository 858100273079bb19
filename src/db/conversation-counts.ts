/*
 * SQL shared by every statement that removes messages or conversations (DELETE /api/conversations/{id},
 * retention): what hangs off a message goes with it, and the counters (db/schema.ts) move in the same
 * statement as the rows they count.
 */

/** A CTE deleting the attempts of the message ids in the CTE `doomed(id)` (a message is its own delivery job). */
export const DELETE_DEPENDENTS = `
  attempts_gone AS (DELETE FROM delivery_attempts WHERE message_id IN (SELECT id FROM doomed))`;

/**
 * A CTE taking the rows of the CTE `removed` (conversations deleted by the statement) off one counter stripe.
 * A stripe may go negative; only the sum means something. Written last in its statement, like the increment
 * on the write path (messages/repository.ts), so the counter is always a statement's last lock.
 */
export const UNCOUNT_REMOVED = `
  uncounted AS (
    UPDATE conversation_counters k SET conversations = k.conversations - n.removed
      FROM (SELECT count(*) AS removed FROM removed) n
     WHERE k.stripe = pg_backend_pid() % 16 AND n.removed > 0)`;
