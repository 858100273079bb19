import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { type FaultProxy, startFaultProxy } from "../helpers/fault-proxy.ts";

// patches/postgres@3.4.9.patch (porsager/postgres#1066, #1154, #1208): when a connection dies under a
// transaction, begin() writes ROLLBACK to it after closed() dropped the socket. Unpatched, that write throws
// from a setImmediate (an uncaught error: `bun test` fails the file, a server dies) and leaves the
// connection unable to flush any later write, so the next query on it waits for its connect timeout.

let pg: TestDatabase;
let proxy: FaultProxy;

beforeAll(async () => {
  pg = await createTestDatabase();
  proxy = await startFaultProxy();
});

afterAll(async () => {
  await proxy.close();
  await pg.drop();
});

describe.each(["reset", "hangUp"] as const)("a connection lost under a transaction (%s)", (fault) => {
  test("rejects the transaction with a connection error, and the same pool answers the next query at once", async () => {
    const sql = postgres(proxy.url(pg.url), { max: 1, onnotice: () => {}, connect_timeout: 5 });
    try {
      await sql`select 1`;
      const transaction = sql.begin(async (tx) => {
        await tx`select 1`;
        await tx`select pg_sleep(2)`;
      });
      await Bun.sleep(200);
      proxy[fault]();
      const error = (await transaction.catch((e: unknown) => e)) as { code?: string };
      expect(["CONNECTION_CLOSED", "ECONNRESET"]).toContain(error.code ?? "");
      // Let the deferred ROLLBACK write run: unpatched, it throws right here.
      await Bun.sleep(50);
      const started = performance.now();
      expect((await sql`select 2 as two`)[0]).toEqual({ two: 2 });
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      await sql.end({ timeout: 0 });
    }
  });
});
