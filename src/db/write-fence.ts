import postgres from "postgres";
import { runPeriodically } from "./periodic.ts";
import type { SqlRunner } from "./runner.ts";

/**
 * What became of a write whose connection was lost before its answer arrived.
 *
 * A connection that breaks after a statement was sent says nothing about whether the statement committed:
 * the server may have committed and failed only to send the reply. Answering "nothing was stored" then is a
 * lie that turns a client's retry into a duplicate. So every write statement of the message path also inserts
 * a receipt row under a token the process chose before sending it (`write_receipts`, same transaction), and
 * after a connection loss the process *fences* the token on a fresh connection:
 *
 *   INSERT INTO write_receipts (token, result) VALUES ($token, NULL) ON CONFLICT (token) DO NOTHING
 *
 * - The insert succeeds: the write had not committed, and now it never can (its own receipt insert would
 *   violate the primary key and abort it): `rolled_back`, a 503 is the truth.
 * - It conflicts: the write's receipt exists. If the write's transaction is still open the insert *waits* for
 *   it to end (unique-index insertion waits on the uncommitted row), so a conflict after the wait means it
 *   committed: `committed`, with the ids the statement returned, read by a second statement (a fresh snapshot).
 * - Neither within the bound (the server is unreachable, or the old transaction hangs on): `unknown`.
 */
export type WriteOutcome = { state: "committed"; result: unknown } | { state: "rolled_back" } | { state: "unknown" };

export interface WriteFence {
  settle(token: string): Promise<WriteOutcome>;
}

const FENCE = "INSERT INTO write_receipts (token, result) VALUES ($1::uuid, NULL) ON CONFLICT (token) DO NOTHING RETURNING token";
const RECEIPT = "SELECT result FROM write_receipts WHERE token = $1::uuid";

/** A token chosen before the statement is sent; time-ordered so receipt inserts append to the index. */
export const newWriteToken = (): string => Bun.randomUUIDv7();

/**
 * The fence on PostgreSQL: each try opens a connection of its own (the pool's may be the broken ones), bounded
 * by what is left of `boundMs` on connect, on the statements (server-side timeouts) and on the client's clock.
 */
export function postgresWriteFence(url: string, boundMs: number): WriteFence {
  return {
    async settle(token) {
      const deadline = performance.now() + boundMs;
      for (;;) {
        const left = deadline - performance.now();
        if (left < 50) return { state: "unknown" };
        const outcome = await fenceOnce(url, token, left).catch(() => undefined);
        if (outcome) return outcome;
        await Bun.sleep(Math.min(200, Math.max(0, deadline - performance.now() - 50)));
      }
    },
  };
}

async function fenceOnce(url: string, token: string, budgetMs: number): Promise<WriteOutcome | undefined> {
  const ms = Math.max(1, Math.floor(budgetMs));
  const client = postgres(url, {
    max: 1,
    prepare: false,
    // Two statements with text parameters need no type catalogue; and no start-up query can outlive end().
    fetch_types: false,
    onnotice: () => {},
    connect_timeout: Math.max(1, Math.ceil(ms / 1000)),
    connection: { application_name: "messaging-fence", statement_timeout: ms, lock_timeout: ms },
  });
  let timer: Timer | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  const fenced = (async (): Promise<WriteOutcome> => {
    if ((await client.unsafe(FENCE, [token])).length > 0) return { state: "rolled_back" };
    const [row] = await client.unsafe<{ result: unknown }[]>(RECEIPT, [token]);
    return row && row.result !== null ? { state: "committed", result: row.result } : { state: "rolled_back" };
  })();
  fenced.catch(() => {});
  try {
    return await Promise.race([fenced, expired]);
  } finally {
    clearTimeout(timer);
    client.end({ timeout: 0 }).catch(() => {});
  }
}

/**
 * The embedded database runs in this process: a statement either completed or threw, and a throw means its
 * transaction did not commit. There is no connection to lose, so there is nothing to look up.
 */
export const inProcessWriteFence: WriteFence = {
  settle: async () => ({ state: "rolled_back" }),
};

/** Receipts are looked up within seconds of their write; a quarter of an hour is ample. */
const RECEIPT_RETENTION_MINUTES = 15;

/** Deletes receipts past their use, now and every ten minutes (any instance may: the DELETE is idempotent). */
export function scheduleReceiptPurge(
  sql: SqlRunner,
  onPurge: (result: { value: number } | { error: unknown }) => void,
  intervalMs = 10 * 60 * 1000,
): () => void {
  const purge = async () => {
    const [row] = await sql.query<{ n: number }>(
      `WITH gone AS (DELETE FROM write_receipts WHERE created_at < now() - make_interval(mins => $1::int) RETURNING 1)
       SELECT count(*)::int AS n FROM gone`,
      [RECEIPT_RETENTION_MINUTES],
    );
    return row?.n ?? 0;
  };
  return runPeriodically(purge, onPurge, intervalMs);
}
