import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { createTestDatabase, type TestDatabase } from "./database.ts";
import { type FaultProxy, startFaultProxy } from "./fault-proxy.ts";

// Each mode is proven with a plain postgres.js client: what the client sees, and what the server kept
// (read over a direct connection that bypasses the proxy).

let pg: TestDatabase;
let direct: postgres.Sql;
let proxy: FaultProxy;
const clients: postgres.Sql[] = [];

/** A postgres.js client through the proxy; closed after each test. */
function viaProxy(max = 1): postgres.Sql {
  const sql = postgres(proxy.url(pg.url), { max, onnotice: () => {}, connect_timeout: 5, idle_timeout: 0 });
  clients.push(sql);
  return sql;
}

/** Resolves "pending" if `promise` has not settled within `ms`. */
const settledWithin = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([
    promise.then(
      () => "resolved" as const,
      () => "rejected" as const,
    ),
    Bun.sleep(ms).then(() => "pending" as const),
  ]);

const CONNECTION_ERRORS = ["ECONNRESET", "CONNECTION_CLOSED", "CONNECTION_DESTROYED", "EPIPE"];

const rows = async () => (await direct<{ n: number }[]>`select n from marks order by n`).map((r) => r.n);

/** Waits until no backend but the direct one is connected to the test database (the cut one has finished). */
async function backendsGone(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const [row] = await direct<{ others: number }[]>`
      select count(*)::int as others from pg_stat_activity where datname = ${pg.name} and pid <> pg_backend_pid()`;
    if (row?.others === 0) return;
    await Bun.sleep(50);
  }
  throw new Error("the cut connection's backend is still there");
}

beforeAll(async () => {
  pg = await createTestDatabase();
  direct = postgres(pg.url, { max: 1, onnotice: () => {} });
  await direct`create table marks (n int primary key)`;
  proxy = await startFaultProxy();
});

afterEach(async () => {
  await proxy.heal();
  await Promise.all(clients.splice(0).map((sql) => sql.end({ timeout: 0 })));
  await direct`truncate marks`;
});

afterAll(async () => {
  await proxy.close();
  await direct.end();
  await pg.drop();
});

describe("fault proxy", () => {
  test("passes queries through to the database named in the rewritten URL", async () => {
    expect(new URL(proxy.url(pg.url)).port).toBe(String(proxy.port));
    const sql = viaProxy();
    const [row] = await sql<{ db: string }[]>`select current_database() as db`;
    expect(row?.db).toBe(pg.name);
    expect(proxy.links()).toHaveLength(1);
  });

  test("reset() fails a query in flight with a connection error, and new connections work again", async () => {
    const sql = viaProxy();
    await sql`select 1`;
    const inFlight = sql`select pg_sleep(5)`.catch((e: { code?: string }) => e);
    await Bun.sleep(100);
    const resetsBefore = proxy.stats.reset;
    proxy.reset();
    const error = (await inFlight) as { code?: string };
    expect(CONNECTION_ERRORS).toContain(error.code ?? "");
    expect(proxy.stats.reset).toBe(resetsBefore + 1);
    expect((await sql`select 2 as two`)[0]).toEqual({ two: 2 });
  });

  test("hangUp() closes connections without an error first, and new connections work again", async () => {
    const sql = viaProxy();
    await sql`select 1`;
    const inFlight = sql`select pg_sleep(5)`.catch((e: { code?: string }) => e);
    await Bun.sleep(100);
    proxy.hangUp();
    expect(((await inFlight) as { code?: string }).code).toBe("CONNECTION_CLOSED");
    expect((await sql`select 2 as two`)[0]).toEqual({ two: 2 });
  });

  test("stall() holds open and new connections silent without closing them, and heal() lets them finish", async () => {
    const open = viaProxy();
    await open`select 1`;
    proxy.stall();
    const onOpen = open`select 'open' as which`;
    const onNew = viaProxy()`select 'new' as which`;
    expect(await settledWithin(onOpen, 500)).toBe("pending");
    expect(await settledWithin(onNew, 10)).toBe("pending");
    proxy.heal();
    expect((await onOpen)[0]).toEqual({ which: "open" });
    expect((await onNew)[0]).toEqual({ which: "new" });
  });

  test("a single connection can be stalled while the others pass", async () => {
    const a = viaProxy();
    const b = viaProxy();
    await a`select 1`;
    await b`select 1`;
    const [first] = proxy.links();
    first!.stall();
    const queries = [a`select 'a' as x`, b`select 'b' as x`];
    const states = await Promise.all(queries.map((q) => settledWithin(q, 300)));
    expect(states.sort()).toEqual(["pending", "resolved"]);
    first!.heal();
    await Promise.all(queries);
  });

  test("refuse() refuses new connections but leaves open ones working", async () => {
    const open = viaProxy();
    await open`select 1`;
    proxy.refuse();
    const error = await viaProxy()`select 1`.catch((e: { code?: string }) => e);
    expect((error as { code?: string }).code).toBe("ECONNREFUSED");
    expect((await open`select 3 as three`)[0]).toEqual({ three: 3 });
    await proxy.heal();
    expect((await viaProxy()`select 4 as four`)[0]).toEqual({ four: 4 });
  });

  test("cutAfterQuerySent() drops the connection before any reply; the server still runs the statement", async () => {
    const sql = viaProxy();
    await sql`select 1`;
    const cut = proxy.cutAfterQuerySent({ match: /insert into marks/ });
    const error = await sql`insert into marks values (1)`.catch((e: { code?: string }) => e);
    expect(CONNECTION_ERRORS).toContain((error as { code?: string }).code ?? "");
    expect((await cut)?.statement).toContain("insert into marks");
    await backendsGone();
    expect(await rows()).toEqual([1]);
  });

  test("cutAfterQuerySent({ withholdSync }) leaves the statement's transaction open, so the server rolls it back", async () => {
    const sql = viaProxy();
    await sql`select 1`;
    const cut = proxy.cutAfterQuerySent({ match: /insert into marks/, withholdSync: true });
    const error = await sql`insert into marks values (2)`.catch((e: { code?: string }) => e);
    expect(CONNECTION_ERRORS).toContain((error as { code?: string }).code ?? "");
    expect(await cut).not.toBeNull();
    await backendsGone();
    expect(await rows()).toEqual([]);
  });

  test("cutAfterCommit() lets the statement commit but the client never hears of it", async () => {
    const sql = viaProxy();
    const cut = proxy.cutAfterCommit({ match: /insert into marks/ });
    expect((await sql`select 5 as five`)[0]).toEqual({ five: 5 }); // does not match: passes
    const error = await sql`insert into marks values (3)`.catch((e: { code?: string }) => e);
    expect(CONNECTION_ERRORS).toContain((error as { code?: string }).code ?? "");
    expect(await cut).toMatchObject({ committed: true });
    // Committed before the cut, so visible at once (no waiting for the backend to go).
    expect(await rows()).toEqual([3]);
  });

  test("cutAfterCommit() inside a transaction cuts on the reply to COMMIT", async () => {
    const sql = viaProxy();
    const cut = proxy.cutAfterCommit({ match: /insert into marks/ });
    const outcome = await sql
      .begin(async (tx) => {
        await tx`insert into marks values (4)`;
        await tx`insert into marks values (5)`;
      })
      .catch((e: { code?: string }) => e);
    expect(CONNECTION_ERRORS).toContain((outcome as { code?: string }).code ?? "");
    expect(await cut).toMatchObject({ committed: true });
    expect(await rows()).toEqual([4, 5]);
  });

  test("cutAfterCommit() reports committed: false when the statement failed", async () => {
    await direct`insert into marks values (6)`;
    const sql = viaProxy();
    const cut = proxy.cutAfterCommit({ match: /insert into marks/ });
    await sql`insert into marks values (6)`.catch(() => {});
    expect(await cut).toMatchObject({ committed: false });
  });

  test("heal() disarms a cut that never fired", async () => {
    const cut = proxy.cutAfterCommit({ match: /never executed/ });
    await proxy.heal();
    expect(await cut).toBeNull();
  });
});
