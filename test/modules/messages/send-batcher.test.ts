import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { openPostgres } from "../../../src/db/client.ts";
import type { SqlRunner } from "../../../src/db/runner.ts";
import type { WriteFence, WriteOutcome } from "../../../src/db/write-fence.ts";
import { SendBatcher } from "../../../src/modules/messages/send-batcher.ts";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { outboundRow as outbound } from "../../helpers/messaging.ts";

describe.each(["postgres", "embedded"] as const)("SendBatcher on %s", (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database });
  });
  afterAll(() => t.close());

  test("concurrent sends share batches, and every caller gets the ids of its own message", async () => {
    const batcher = new SendBatcher(t.database.sql, { maxInFlight: 1, maxBatch: 256 });
    const senders = ["+12015550001", "+12015550002", "+12015550003"];
    const sent = Array.from({ length: 90 }, (_, i) => ({ from: senders[i % 3]!, body: `batched ${i}` }));
    const ids = await Promise.all(sent.map((m) => batcher.submit(outbound(m.from, m.body))));

    expect(new Set(ids.map((r) => r!.id)).size).toBe(90);
    const rows = await t.database.sql.query<{ id: string; body: string; conversation_id: string; from_addr: string }>(
      "SELECT id::text AS id, body, conversation_id::text AS conversation_id, from_addr FROM messages WHERE body LIKE 'batched %'",
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    sent.forEach((m, i) => {
      const row = byId.get(ids[i]!.id)!;
      expect(row.body).toBe(m.body);
      expect(row.conversation_id).toBe(ids[i]!.conversation_id);
      expect(row.from_addr).toBe(m.from);
    });
    const counts = await t.database.sql.query<{ participant_a: string; message_count: number }>(
      "SELECT participant_a, message_count FROM conversations WHERE participant_a LIKE '+1201555000%' ORDER BY participant_a",
    );
    expect(counts).toEqual(senders.map((s) => ({ participant_a: s, message_count: 30 })));
    const [jobs] = await t.database.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM messages m WHERE m.run_at IS NOT NULL AND m.body LIKE 'batched %'",
    );
    expect(jobs!.n).toBe(90);
  });

  test("bodies with quotes, backslashes, braces, commas, NULL-like words and emoji survive a batch byte for byte", async () => {
    const batcher = new SendBatcher(t.database.sql, { maxInFlight: 1, maxBatch: 256 });
    const bodies = ['say "hi"', "back\\slash \\\"", "{a,b}", "a,b,c", "NULL", "", " padded ", "line\nbreak", "emoji 👩‍👩‍👧 é", "'single'"];
    const first = batcher.submit(outbound("+12015550011", "tricky warm-up"));
    const ids = await Promise.all(bodies.map((b) => batcher.submit(outbound("+12015550011", b))));
    await first;
    for (const [i, body] of bodies.entries()) {
      const [row] = await t.database.sql.query<{ body: string }>("SELECT body FROM messages WHERE id = $1", [Number(ids[i]!.id)]);
      expect(row!.body).toBe(body);
    }
  });

  test("one message the database rejects fails alone; its batch neighbours are stored", async () => {
    const batcher = new SendBatcher(t.database.sql, { maxInFlight: 1, maxBatch: 256 });
    // Occupy the writer so the next three queue up and travel as one batch.
    const first = batcher.submit(outbound("+12015550009", "isolation first"));
    const good1 = batcher.submit(outbound("+12015550009", "isolation good 1"));
    const bad = batcher.submit(outbound("+12015550009", "isolation bad \u0000 NUL"));
    const good2 = batcher.submit(outbound("+12015550009", "isolation good 2"));
    const results = await Promise.allSettled([first, good1, bad, good2]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    const [row] = await t.database.sql.query<{ message_count: number }>(
      "SELECT message_count FROM conversations WHERE participant_a = '+12015550009'",
    );
    expect(row!.message_count).toBe(3);
  });

});

describe("SendBatcher without a database", () => {
  test("a batch starts beside one in flight only once parallelAfter sends wait", async () => {
    // A database that answers each statement only when told to, and remembers how many sends each carried.
    const statements: { size: number; answer: () => void }[] = [];
    const sql: SqlRunner = {
      query: <T>(_text: string, params: unknown[] = []) =>
        new Promise<T[]>((resolve) => {
          // A batch's messages arrive as one JSON array; a lone send as the single statement's parameters.
          const size = typeof params[0] === "string" && params[0].startsWith("[") ? (JSON.parse(params[0]) as unknown[]).length : 1;
          const rows = Array.from({ length: size }, (_, i) => ({ id: String(statements.length * 100 + i), conversation_id: "1" }));
          statements.push({ size, answer: () => resolve(rows as T[]) });
        }),
      transaction: (fn) => fn(sql),
    };
    const batcher = new SendBatcher(sql, { maxInFlight: 4, maxBatch: 256, parallelAfter: 3 });
    const sends = [batcher.submit(outbound("+12015550020", "parallel 0"))];
    expect(statements.map((s) => s.size)).toEqual([1]);
    sends.push(batcher.submit(outbound("+12015550020", "parallel 1")), batcher.submit(outbound("+12015550020", "parallel 2")));
    expect(statements.map((s) => s.size)).toEqual([1]);
    sends.push(batcher.submit(outbound("+12015550020", "parallel 3")));
    expect(statements.map((s) => s.size)).toEqual([1, 3]);
    sends.push(batcher.submit(outbound("+12015550020", "parallel 4")));
    // A statement's end reaches the batcher a few microtasks after its callers are answered.
    const settled = () => new Promise((resolve) => setImmediate(resolve));
    statements[0]!.answer();
    await settled();
    // The batch of three is still being written: the lone waiting send waits for it rather than pay a statement beside it.
    expect(statements.map((s) => s.size)).toEqual([1, 3]);
    statements[1]!.answer();
    await settled();
    expect(statements.map((s) => s.size)).toEqual([1, 3, 1]);
    statements[2]!.answer();
    expect(new Set((await Promise.all(sends)).map((ids) => ids!.id)).size).toBe(5);
  });

  test("the next batch goes to the database before the callers of the one just written are answered", async () => {
    const statements: { size: number; answer: () => void }[] = [];
    const sql: SqlRunner = {
      query: <T>(_text: string, params: unknown[] = []) =>
        new Promise<T[]>((resolve) => {
          const size = typeof params[0] === "string" && params[0].startsWith("[") ? (JSON.parse(params[0]) as unknown[]).length : 1;
          statements.push({ size, answer: () => resolve(Array.from({ length: size }, (_, i) => ({ id: String(i + 1), conversation_id: "1" })) as T[]) });
        }),
      transaction: (fn) => fn(sql),
    };
    const batcher = new SendBatcher(sql, { maxInFlight: 1, maxBatch: 256 });
    const seenByFirstCaller: number[] = [];
    const first = batcher.submit(outbound("+12015550022", "pipelined 0")).then(() => seenByFirstCaller.push(statements.length));
    const waiting = [1, 2].map((i) => batcher.submit(outbound("+12015550022", `pipelined ${i}`)));
    expect(statements.map((s) => s.size)).toEqual([1]);
    statements[0]!.answer();
    await first;
    // When the first caller was answered, the two sends that waited had already gone as the next statement.
    expect(seenByFirstCaller).toEqual([2]);
    expect(statements.map((s) => s.size)).toEqual([1, 2]);
    statements[1]!.answer();
    expect((await Promise.all(waiting)).map((ids) => ids!.id)).toEqual(["1", "2"]);
  });

  test("a batch whose connection was lost lets the next batch go while the fence learns its outcome", async () => {
    const statements: { reject: (err: unknown) => void; resolve: (rows: unknown[]) => void }[] = [];
    const sql: SqlRunner = {
      query: <T>() => new Promise<T[]>((resolve, reject) => statements.push({ resolve: resolve as (rows: unknown[]) => void, reject })),
      transaction: (fn) => fn(sql),
    };
    let settle!: (outcome: WriteOutcome) => void;
    const fence: WriteFence = { settle: () => new Promise((resolve) => (settle = resolve)) };
    const batcher = new SendBatcher(sql, { maxInFlight: 4, maxBatch: 256, parallelAfter: 64, fence });
    const lost = batcher.submit(outbound("+12015550021", "lost 0"));
    const next = batcher.submit(outbound("+12015550021", "next 0"));
    expect(statements.length).toBe(1);
    statements[0]!.reject(Object.assign(new Error("write ECONNRESET"), { code: "ECONNRESET" }));
    await new Promise((resolve) => setImmediate(resolve));
    // The first batch's outcome is still unknown, and the waiting send has gone in a statement of its own.
    expect(statements.length).toBe(2);
    statements[1]!.resolve([{ id: "2", conversation_id: "1" }]);
    expect(await next).toEqual({ id: "2", conversation_id: "1" });
    settle({ state: "committed", result: [["1", "1"]] });
    expect(await lost).toEqual({ id: "1", conversation_id: "1" });
  });

  test("an unreachable database rejects every send of the batch", async () => {
    const down = openPostgres("postgres://postgres@127.0.0.1:1/none", 1);
    const batcher = new SendBatcher(down.sql, { maxInFlight: 1, maxBatch: 256 });
    const results = await Promise.allSettled([1, 2, 3].map((i) => batcher.submit(outbound("+12015550010", `down ${i}`))));
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    await down.close();
  });
});
