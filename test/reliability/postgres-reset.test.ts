import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ServeProcess } from "../helpers/binary.ts";
import type { FaultProxy } from "../helpers/fault-proxy.ts";
import { alive, type ServerBehindProxy, startServerBehindProxy, startTraffic, write, WRITE_ROUTES } from "./traffic.ts";

// Issue 6, defect 1: postgres.js 3.4.9 threw `null is not an object (evaluating 'socket.write')` from a
// setImmediate when a connection was reset while a transaction was rolling back, killing the process.
// patches/postgres@3.4.9.patch guards it (porsager/postgres#1066, #1154, #1208).

const RESETS = 40;

let setup: ServerBehindProxy;
let proxy: FaultProxy;
let server: ServeProcess;

beforeAll(async () => {
  setup = await startServerBehindProxy({ MESSAGING_DB_POOL_SIZE: "3" });
  ({ proxy, server } = setup);
});

afterAll(() => setup?.close());

describe("PostgreSQL connections reset under load", () => {
  test(`the server survives ${RESETS} resets and hang-ups during concurrent writes and then accepts every write route`, async () => {
    const traffic = startTraffic(server.url, { writers: 16, abortAfterMs: 20_000 });
    for (let i = 0; i < RESETS; i++) {
      await Bun.sleep(80 + Math.random() * 120);
      // The ways a connection ends: an RST, a close with no error, and an RST while a statement of a
      // transaction is in flight (after which postgres.js writes ROLLBACK to the dead connection).
      if (i % 3 === 0) proxy.reset();
      else if (i % 3 === 1) proxy.hangUp();
      else void proxy.cutAfterQuerySent({ match: /advisory_xact_lock/ });
    }
    await proxy.heal();
    await traffic.stop();
    const died = () => `died:\n${server.stderr().slice(-2000)}\n${server.stdout().slice(-2000)}`;
    expect(alive(server.pid) ? "alive" : died()).toBe("alive");
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    // Every route works again: no connection of the pool was left wedged by the resets.
    for (const route of WRITE_ROUTES) {
      for (let i = 0; i < 6; i++) expect((await write(server.url, route, 10_000)).status).toBe(202);
    }
  });
});
