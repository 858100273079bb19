import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import net from "node:net";
import postgres from "postgres";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { type FaultProxy, startFaultProxy } from "../helpers/fault-proxy.ts";

// patches/postgres@3.4.9.patch (porsager/postgres#1066, #1154, #1208): when a connection dies under a
// transaction, begin() writes ROLLBACK to it after closed() dropped the socket. Unpatched, that write throws
// from a setImmediate (an uncaught error: `bun test` fails the file, a server dies) and leaves the
// connection unable to flush any later write, so the next query on it waits for its connect timeout.
// The patch also settles queries handed to a connection between its socket's 'error' and 'close' events.

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

describe("a connection whose socket fails", () => {
  test("rejects a query handed to it before the close arrives, and ends at once", async () => {
    const sockets: net.Socket[] = [];
    const target = new URL(pg.url);
    const socket = () => {
      const opened = net.connect({ host: target.hostname, port: Number(target.port || 5432) });
      sockets.push(opened);
      return opened;
    };
    // postgres.js takes a `socket` factory, which its type declarations leave out.
    const sql = postgres(pg.url, { max: 1, onnotice: () => {}, ...({ socket } as object) });
    await sql`select 1`;
    const inFlight = sql`select pg_sleep(2)`.catch((e: unknown) => e);
    await Bun.sleep(50);
    // Registered after postgres.js's own listener, so it runs once postgres.js has handled the error and
    // before the 'close' event. Unpatched, the query handed over here waits forever.
    let late: Promise<unknown> | undefined;
    sockets[0]!.once("error", () => {
      late = sql`select 2`.catch((e: unknown) => e);
    });
    sockets[0]!.destroy(new Error("the network went away"));
    await Bun.sleep(20);
    const answer = await Promise.race([late, Bun.sleep(3000).then(() => "hung")]);
    expect((answer as { code?: string }).code).toBe("CONNECTION_CLOSED");
    expect(((await inFlight) as Error).message).toBe("the network went away");
    const started = performance.now();
    await sql.end({ timeout: 5 });
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
