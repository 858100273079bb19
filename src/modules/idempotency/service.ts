import { runPeriodically } from "../../db/periodic.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { AppError } from "../../http/errors.ts";
import type { IdempotencyRequest } from "../../http/idempotency.ts";
import { deleteExpired, findLive, type StoredResponseRow, saveResponse, tryLockKey } from "./repository.ts";

export interface StoredResponse {
  status: number;
  body: unknown;
}

/**
 * Claims a key inside the caller's transaction (SPEC §5). A transaction-level advisory lock marks the key
 * in flight until commit, so a concurrent twin gets 409 rather than a second message. A live stored
 * response with the same fingerprint is returned for replay; with another fingerprint the key is refused (422).
 * Returns null when the caller should process the request and then `rememberResponse` in the same transaction.
 */
export async function claimIdempotencyKey(tx: SqlRunner, req: IdempotencyRequest): Promise<StoredResponse | null> {
  // A finished request is answered from its stored response without the lock, so parallel retries of a
  // completed request all get the replay; only a request actually in flight makes its twins wait (409).
  const done = await findLive(tx, req.scope, req.key);
  if (done) return replayOf(done, req);
  if (!(await tryLockKey(tx, req.scope, req.key))) {
    throw new AppError("idempotency_key_in_use", "a request with this Idempotency-Key is still being processed; retry shortly", {
      headers: { "retry-after": "1" },
    });
  }
  // The holder of the lock may have committed between the first look and the lock.
  const stored = await findLive(tx, req.scope, req.key);
  return stored ? replayOf(stored, req) : null;
}

function replayOf(stored: StoredResponseRow, req: IdempotencyRequest): StoredResponse {
  if (stored.request_hash !== req.hash) {
    throw new AppError("idempotency_key_reused", "this Idempotency-Key was used with a different request body");
  }
  return { status: stored.response_status, body: stored.response_body };
}

export function rememberResponse(tx: SqlRunner, req: IdempotencyRequest, response: StoredResponse, ttlHours: number) {
  return saveResponse(tx, { ...req, ...response, ttlHours });
}

/** Deletes responses past their retention; run periodically by the server. */
export const purgeExpiredIdempotencyKeys = (sql: SqlRunner) => deleteExpired(sql);

/**
 * Purges expired keys now and then every `intervalMs` (unref'd, so it never keeps the process alive).
 * Expired rows are already ignored by lookups; this only keeps the table small. Every instance may run it:
 * the DELETE is idempotent. Returns a function that stops it.
 */
export function scheduleIdempotencyPurge(
  sql: SqlRunner,
  onPurge: (result: { deleted: number } | { error: unknown }) => void,
  intervalMs = 10 * 60 * 1000,
): () => void {
  return runPeriodically(() => purgeExpiredIdempotencyKeys(sql), (r) => onPurge("error" in r ? r : { deleted: r.value }), intervalMs);
}
