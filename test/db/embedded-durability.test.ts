import { afterAll, afterEach, beforeAll, describe, expect, spyOn, test } from "bun:test";
import fs from "node:fs";
import { SendBatcher } from "../../src/modules/messages/send-batcher.ts";
import { buildTestApp, type TestApp } from "../helpers/app.ts";
import { outboundRow, post, smsSend, UNLIMITED } from "../helpers/messaging.ts";

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ database: "embedded", config: UNLIMITED });
});
afterAll(() => t.close());

/**
 * Every real host `fsync(2)` made while the test runs, as the path of the file synced (read from
 * /proc/self/fd at the moment of the call), interleaved with the test's own markers. The call still
 * goes through: the database must keep working.
 */
const events: string[] = [];
const realFsync = fs.fsyncSync.bind(fs);
const fsyncSpy = spyOn(fs, "fsyncSync").mockImplementation((fd: number) => {
  events.push(`fsync ${fs.readlinkSync(`/proc/self/fd/${fd}`)}`);
  realFsync(fd);
});
afterEach(() => {
  events.length = 0;
});
afterAll(() => fsyncSpy.mockRestore());

const isWalSync = (event: string) => event.startsWith("fsync ") && event.includes("/pg_wal/");

/** A unique sender per message: a batch of them touches as many conversations. */
const outbound = (i: number) => outboundRow(`+1201555${String(7000 + i).padStart(4, "0")}`, `durable ${i}`);

describe("durable commits on the embedded database", () => {
  test("a send is answered 202 only after its WAL was fsync'd on the host disk", async () => {
    events.push("request sent");
    const res = await post(t.app, "/api/messages/sms", smsSend({ body: "survives power loss" }));
    events.push("answered");

    expect(res.status).toBe(202);
    const sent = events.indexOf("request sent");
    const answered = events.indexOf("answered");
    const walSyncs = events.slice(sent + 1, answered).filter(isWalSync);
    expect(walSyncs.length).toBeGreaterThanOrEqual(1);
  });

  test("group commit is kept: concurrent sends share a batch, and one WAL fsync covers each batch", async () => {
    let batches = 0;
    const batcher = new SendBatcher(t.database.sql, { maxInFlight: 1, maxBatch: 256, observe: { batch: () => batches++ } });
    const sends = 40;

    events.push("submitted");
    const ids = await Promise.all(Array.from({ length: sends }, (_, i) => batcher.submit(outbound(i))));
    events.push("all answered");

    expect(new Set(ids.map((r) => r!.id)).size).toBe(sends);
    expect(batches).toBeLessThan(sends);
    const walSyncs = events.filter(isWalSync).length;
    // Every batch's commit was synced before it was answered, and the sends of a batch shared that sync.
    expect(walSyncs).toBeGreaterThanOrEqual(batches);
    expect(walSyncs).toBeLessThan(sends);
  });

  test("over real sockets, concurrent sends arrive in shared batches and share their WAL fsyncs", async () => {
    const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (req) => t.app.handle(req) });
    try {
      const sends = 40;
      const statuses = await Promise.all(
        Array.from({ length: sends }, (_, i) =>
          fetch(`http://127.0.0.1:${server.port}/api/messages/sms`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(smsSend({ body: `socket ${i}` })),
          }).then((res) => res.status),
        ),
      );
      expect(statuses).toEqual(Array.from({ length: sends }, () => 202));
      const walSyncs = events.filter(isWalSync).length;
      expect(walSyncs).toBeGreaterThanOrEqual(1);
      expect(walSyncs).toBeLessThan(sends / 2);
    } finally {
      await server.stop(true);
    }
  });
});
