/**
 * The mock provider's ledger in the database (`mock_provider_sends`): its acceptances by idempotency key, written
 * here because providers run no SQL (src/providers/mock/ledger.ts holds the interface and the in-memory twin).
 */
import type { SqlRunner } from "../../db/runner.ts";
import { textArray } from "../../db/sql-arrays.ts";
import type { MockAcceptance, MockLedger, MockSend } from "../../providers/mock/ledger.ts";

/*
 * One statement for a whole flush. ON CONFLICT cannot touch one row twice in a statement, so each key is sent
 * once with `calls` = how many times it occurs in the flush, and the returned total numbers those calls: the one
 * numbered 1 is the key's first acceptance, every other one a repeat.
 */
const ACCEPT = `
  INSERT INTO mock_provider_sends (idempotency_key, provider, provider_message_id, calls)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])
  ON CONFLICT (idempotency_key) DO UPDATE SET calls = mock_provider_sends.calls + excluded.calls
  RETURNING idempotency_key, provider_message_id, calls`;

interface AcceptRow {
  idempotency_key: string;
  provider_message_id: string;
  calls: number;
}

interface Waiting {
  entries: MockSend[];
  resolve(answers: MockAcceptance[]): void;
  reject(error: unknown): void;
}

/**
 * In `mock_provider_sends`. The dispatcher's workers call `accept` one message at a time; calls made in the same
 * event-loop turn (including timers that fire together) are written by one statement after that turn, so a
 * claimed batch costs one round trip instead of one per message. A failed statement rejects every caller of its
 * flush; nothing of it was written.
 */
export function sqlMockLedger(sql: SqlRunner): MockLedger {
  let queue: Waiting[] = [];
  const flush = () => {
    const waiting = queue;
    queue = [];
    writeFlush(sql, waiting).catch((error: unknown) => {
      for (const w of waiting) w.reject(error);
    });
  };
  return {
    accept: (entries) =>
      new Promise((resolve, reject) => {
        if (entries.length === 0) return resolve([]);
        if (queue.length === 0) setImmediate(flush);
        queue.push({ entries, resolve, reject });
      }),
  };
}

async function writeFlush(sql: SqlRunner, waiting: Waiting[]): Promise<void> {
  const byKey = new Map<string, { send: MockSend; count: number }>();
  for (const { entries } of waiting) {
    for (const send of entries) {
      const seen = byKey.get(send.idempotencyKey);
      if (seen) seen.count += 1;
      else byKey.set(send.idempotencyKey, { send, count: 1 });
    }
  }
  const keys = [...byKey.values()];
  const rows = await sql.query<AcceptRow>(ACCEPT, [
    textArray(keys.map((k) => k.send.idempotencyKey)),
    textArray(keys.map((k) => k.send.provider)),
    textArray(keys.map((k) => k.send.providerMessageId)),
    `{${keys.map((k) => k.count).join(",")}}`,
  ]);
  // Numbers the flush's calls of each key in arrival order, ending at the stored total.
  const next = new Map(rows.map((r) => [r.idempotency_key, { row: r, calls: r.calls - byKey.get(r.idempotency_key)!.count + 1 }]));
  for (const w of waiting) {
    w.resolve(
      w.entries.map(({ idempotencyKey }) => {
        const n = next.get(idempotencyKey)!;
        const answer = { idempotencyKey, providerMessageId: n.row.provider_message_id, calls: n.calls, first: n.calls === 1 };
        n.calls += 1;
        return answer;
      }),
    );
  }
}
