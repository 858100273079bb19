import type { SqlRunner } from "../../db/runner.ts";

export interface StoredResponseRow {
  request_hash: string;
  response_status: number;
  response_body: unknown;
}

/** Raw SQL: advisory locks and an upsert over an expired row are beyond drizzle's builder. */
export async function tryLockKey(tx: SqlRunner, scope: string, key: string): Promise<boolean> {
  const [row] = await tx.query<{ locked: boolean }>(
    "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7002)) AS locked",
    [`${scope}\u001f${key}`],
  );
  return row?.locked === true;
}

/**
 * The live stored response, its body parsed from the text of the first answer so its keys keep their order. A row
 * stored before migration 0021 has only the jsonb copy, read as text (keys in jsonb's order).
 */
export async function findLive(tx: SqlRunner, scope: string, key: string): Promise<StoredResponseRow | undefined> {
  const [row] = await tx.query<{ request_hash: string; response_status: number; response_text: string }>(
    `SELECT request_hash, response_status, coalesce(response_text, response_body::text) AS response_text FROM idempotency_keys
      WHERE scope = $1 AND key = $2 AND expires_at > now()`,
    [scope, key],
  );
  return row && { request_hash: row.request_hash, response_status: row.response_status, response_body: JSON.parse(row.response_text) };
}

export async function saveResponse(
  tx: SqlRunner,
  row: { scope: string; key: string; hash: string; status: number; body: unknown; ttlHours: number },
): Promise<void> {
  await tx.query(
    // The text is what replays read; the jsonb copy is for binaries of before 0021 during an upgrade.
    `INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body, response_text, expires_at)
     VALUES ($1, $2, $3, $4, $5::text::jsonb, $5::text, now() + make_interval(hours => $6::int))
     ON CONFLICT (scope, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,
           response_body = EXCLUDED.response_body, response_text = EXCLUDED.response_text, created_at = now(),
           expires_at = EXCLUDED.expires_at`,
    [row.scope, row.key, row.hash, row.status, JSON.stringify(row.body), row.ttlHours],
  );
}

export async function deleteExpired(sql: SqlRunner): Promise<number> {
  const rows = await sql.query<{ n: number }>(
    "WITH gone AS (DELETE FROM idempotency_keys WHERE expires_at <= now() RETURNING 1) SELECT count(*)::int AS n FROM gone",
  );
  return rows[0]?.n ?? 0;
}
