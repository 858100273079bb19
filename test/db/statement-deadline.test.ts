import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { isDatabaseUnavailable } from "../../src/db/availability.ts";
import { clientDeadlineMs, type DatabaseHandle, openPostgres, type PostgresTimeouts } from "../../src/db/client.ts";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { DatabaseTimeoutError, deadlineSockets } from "../../src/db/statement-deadline.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { type FaultProxy, startFaultProxy } from "../helpers/fault-proxy.ts";

// The bounds of src/db/client.ts and statement-deadline.ts, through the fault proxy: what a caller of the
// database handle sees when PostgreSQL is slow, partitioned away, or left idle inside a transaction.

const TIMEOUTS: PostgresTimeouts = { connectMs: 600, statementMs: 400, idleInTransactionMs: 300, writeOutcomeMs: 1000 };
const DEADLINE = clientDeadlineMs(TIMEOUTS.statementMs);

let pg: TestDatabase;
let proxy: FaultProxy;
let handle: DatabaseHandle;

/** How a promise settled, and when. */
async function outcome(promise: Promise<unknown>): Promise<{ error?: unknown; ms: number }> {
  const started = performance.now();
  try {
    await promise;
    return { ms: performance.now() - started };
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
}

const code = (error: unknown) => (error as { code?: string } | undefined)?.code;

beforeAll(async () => {
  pg = await createTestDatabase();
  proxy = await startFaultProxy();
});

afterEach(async () => {
  await proxy.heal();
  await Bun.sleep(20); // let a destroyed socket's 'close' arrive, so close() does not wait for it
  await handle?.close();
});

afterAll(async () => {
  await proxy.close();
  await pg.drop();
});

describe("PostgreSQL timeouts", () => {
  test("a statement unanswered under a partition fails with DatabaseTimeoutError and its connection is closed", async () => {
    handle = openPostgres(proxy.url(pg.url), 1, TIMEOUTS);
    await handle.sql.query("select 1");
    const opened = proxy.stats.accepted;
    proxy.stall();
    const result = await outcome(handle.sql.query("select 2"));
    expect(result.error).toBeInstanceOf(DatabaseTimeoutError);
    expect(isDatabaseUnavailable(result.error)).toBe(true);
    expect(result.ms).toBeGreaterThanOrEqual(DEADLINE - 50);
    expect(result.ms).toBeLessThan(DEADLINE + 1000);
    await proxy.heal();
    await Bun.sleep(20); // the socket's 'close' follows its 'error' a tick later
    expect(await handle.sql.query("select 3 as n")).toEqual([{ n: 3 }]);
    // Answered on a new connection: the stuck one was closed, not handed out again.
    expect(proxy.stats.accepted).toBe(opened + 1);
  });

  test("a new parameterized statement, described before it runs (no Sync yet), is timed as well", async () => {
    handle = openPostgres(proxy.url(pg.url), 1, TIMEOUTS);
    await handle.sql.query("select 1");
    proxy.stall();
    // postgres.js first sends Parse, Describe and Flush for a statement with parameters it has not prepared.
    const result = await outcome(handle.sql.query("select $1::int as n", [1]));
    expect(result.error).toBeInstanceOf(DatabaseTimeoutError);
    expect(result.ms).toBeLessThan(DEADLINE + 1000);
  });

  test("every statement pipelined on the stuck connection fails, drizzle's included", async () => {
    handle = openPostgres(proxy.url(pg.url), 1, TIMEOUTS);
    await handle.sql.query("select 1");
    proxy.stall();
    const results = await Promise.all([
      outcome(handle.sql.query("select 2")),
      outcome(handle.sql.query("select 3")),
      outcome(handle.db.execute("select 4")),
    ]);
    for (const result of results) {
      expect(isDatabaseUnavailable(result.error)).toBe(true);
      expect(result.ms).toBeLessThan(DEADLINE + 1000);
    }
  });

  test("a transaction cut off by the partition fails with the deadline as its reason", async () => {
    handle = openPostgres(proxy.url(pg.url), 1, TIMEOUTS);
    await handle.sql.query("select 1");
    const result = await outcome(
      handle.sql.transaction(async (tx) => {
        await tx.query("select 1");
        proxy.stall();
        await tx.query("select 2");
      }),
    );
    expect(result.error).toBeInstanceOf(DatabaseTimeoutError);
    expect(result.ms).toBeLessThan(DEADLINE + 1000);
  });

  test("a new connection that cannot get through fails after the connect timeout", async () => {
    handle = openPostgres(proxy.url(pg.url), 1, TIMEOUTS);
    proxy.stall();
    const result = await outcome(handle.sql.query("select 1"));
    expect(code(result.error)).toBe("CONNECT_TIMEOUT");
    expect(isDatabaseUnavailable(result.error)).toBe(true);
    expect(result.ms).toBeLessThan(TIMEOUTS.connectMs + 1000);
  });

  test("a slow statement is cancelled by the server's statement_timeout (57014) and keeps its connection", async () => {
    handle = openPostgres(proxy.url(pg.url), 1, TIMEOUTS);
    await handle.sql.query("select 1");
    const [link] = proxy.links();
    const result = await outcome(handle.sql.query("select pg_sleep(5)"));
    expect(code(result.error)).toBe("57014");
    expect(isDatabaseUnavailable(result.error)).toBe(true);
    expect(await handle.sql.query("select 2 as n")).toEqual([{ n: 2 }]);
    expect(proxy.links().map((l) => l.id)).toEqual([link!.id]);
  });

  test("a long result that keeps arriving is progress, not a timeout", async () => {
    handle = openPostgres(proxy.url(pg.url), 1, { ...TIMEOUTS, statementMs: 3000 });
    await handle.sql.query("select 1");
    // Rows trickle out over ~1.5 s, longer than a bound of 400 ms would allow between the first and last byte.
    const rows = await handle.sql.query<{ n: number }>(
      "select n, pg_sleep(0.1) from generate_series(1, 15) as n",
    );
    expect(rows).toHaveLength(15);
  });

  test("the server ends a session left idle inside a transaction, releasing it", async () => {
    handle = openPostgres(proxy.url(pg.url), 1, TIMEOUTS);
    const result = await outcome(
      handle.sql.transaction(async (tx) => {
        await tx.query("select 1");
        await Bun.sleep(TIMEOUTS.idleInTransactionMs + 400);
        await tx.query("select 2");
      }),
    );
    expect(isDatabaseUnavailable(result.error)).toBe(true);
    expect(await handle.sql.query("select 3 as n")).toEqual([{ n: 3 }]);
  });

  test("without a statement bound (migrate), nothing is timed", async () => {
    handle = openPostgres(proxy.url(pg.url), 1);
    expect(await handle.sql.query("select pg_sleep(0.6), 1 as n")).toEqual([{ pg_sleep: "", n: 1 }]);
  });
});

describe("the server closing the connection", () => {
  test("its FIN closes the socket at once, even with written bytes still queued (Bun would emit 'end' and never 'close')", async () => {
    // A server that reads and drops everything and ends the connection at the first bytes, as PostgreSQL closing
    // a session does, while the client has 16 MB queued for it.
    const accepted: Socket[] = [];
    const server = createServer((s) => {
      accepted.push(s);
      s.once("data", () => s.end());
      s.on("data", () => {});
      s.on("error", () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const socket = deadlineSockets(60_000)({ host: ["127.0.0.1"], port: [(server.address() as AddressInfo).port] });
      const closed = new Promise<number>((resolve) => {
        const started = performance.now();
        socket.once("close", () => resolve(performance.now() - started));
      });
      socket.on("error", () => {});
      socket.once("connect", () => {
        socket.write(new Uint8Array(8)); // the startup message
        for (let i = 0; i < 16; i++) socket.write(new Uint8Array(1 << 20));
      });
      const ms = await Promise.race([closed, Bun.sleep(5000).then(() => Infinity)]);
      expect(ms).toBeLessThan(1000);
      expect(socket.destroyed).toBe(true);
    } finally {
      for (const s of accepted) s.destroy();
      server.close();
    }
  });
});
