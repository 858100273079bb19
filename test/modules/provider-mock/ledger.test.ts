import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type DatabaseHandle, openPostgres } from "../../../src/db/client.ts";
import type { SqlRunner } from "../../../src/db/runner.ts";
import { textArray } from "../../../src/db/sql-arrays.ts";
import { sqlMockLedger } from "../../../src/modules/provider-mock/ledger.ts";
import { type MockLedger, MockProvider, type MockSend, memoryMockLedger } from "../../../src/providers/mock/adapter.ts";
import { deliveryIdempotencyKey, type ProviderOutcome } from "../../../src/providers/provider.ts";
import { createEmbeddedTestDatabase, createMigratedTestDatabase } from "../../helpers/database.ts";

const send = (idempotencyKey: string, providerMessageId = `mock-${crypto.randomUUID()}`): MockSend => ({
  idempotencyKey,
  provider: "sms-mms",
  providerMessageId,
});
const freshKey = () => `key-${crypto.randomUUID()}`;

/** A runner that counts the statements sent through it. */
function countingRunner(inner: SqlRunner): SqlRunner & { statements: number } {
  const runner = {
    statements: 0,
    query: <T>(text: string, params?: unknown[]) => (runner.statements++, inner.query<T>(text, params)),
    transaction: <T>(fn: (tx: SqlRunner) => Promise<T>) => inner.transaction(fn),
  };
  return runner;
}

interface Setup {
  ledger: MockLedger;
  /** The stored row of a key, or undefined without a database. */
  stored(key: string): Promise<{ provider_message_id: string; calls: number } | undefined>;
}

/** The semantics both ledgers share. */
function sharedCases(setup: () => Setup) {
  test("a first acceptance records the given id", async () => {
    const { ledger, stored } = setup();
    const key = freshKey();
    expect(await ledger.accept([send(key, "mock-a")])).toEqual([{ idempotencyKey: key, providerMessageId: "mock-a", calls: 1, first: true }]);
    const row = await stored(key);
    if (row) expect(row).toEqual({ provider_message_id: "mock-a", calls: 1 });
  });

  test("a repeat answers the stored id, not the new one, and counts the call", async () => {
    const { ledger, stored } = setup();
    const key = freshKey();
    await ledger.accept([send(key, "mock-first")]);
    expect(await ledger.accept([send(key, "mock-second")])).toEqual([{ idempotencyKey: key, providerMessageId: "mock-first", calls: 2, first: false }]);
    expect(await ledger.accept([send(key, "mock-third")])).toEqual([{ idempotencyKey: key, providerMessageId: "mock-first", calls: 3, first: false }]);
    const row = await stored(key);
    if (row) expect(row).toEqual({ provider_message_id: "mock-first", calls: 3 });
  });

  test("one key twice in one call: the first occurrence is the acceptance, the second a repeat", async () => {
    const { ledger } = setup();
    const [a, b] = [freshKey(), freshKey()];
    expect(await ledger.accept([send(a, "mock-a1"), send(b, "mock-b"), send(a, "mock-a2")])).toEqual([
      { idempotencyKey: a, providerMessageId: "mock-a1", calls: 1, first: true },
      { idempotencyKey: b, providerMessageId: "mock-b", calls: 1, first: true },
      { idempotencyKey: a, providerMessageId: "mock-a1", calls: 2, first: false },
    ]);
  });

  test("an empty call answers nothing", async () => {
    expect(await setup().ledger.accept([])).toEqual([]);
  });
}

describe("memoryMockLedger", () => {
  let ledger: MockLedger;
  sharedCases(() => {
    ledger ??= memoryMockLedger();
    return { ledger, stored: async () => undefined };
  });
});

describe.each(["postgres", "embedded"] as const)("sqlMockLedger on %s", (kind) => {
  let handle: DatabaseHandle;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    if (kind === "postgres") {
      const pg = await createMigratedTestDatabase();
      handle = openPostgres(pg.url, 2);
      cleanup = async () => (await handle.close(), await pg.drop());
    } else {
      const embedded = await createEmbeddedTestDatabase({ migrated: true });
      handle = embedded.handle;
      cleanup = embedded.remove;
    }
  });
  afterAll(() => cleanup());

  const stored = async (key: string) => {
    const rows = await handle.sql.query<{ provider_message_id: string; calls: number }>(
      "SELECT provider_message_id, calls FROM mock_provider_sends WHERE idempotency_key = $1",
      [key],
    );
    return rows[0];
  };

  sharedCases(() => ({ ledger: sqlMockLedger(handle.sql), stored }));

  test("200 accepts in one turn are one statement, each answered with its own key", async () => {
    const runner = countingRunner(handle.sql);
    const ledger = sqlMockLedger(runner);
    const keys = Array.from({ length: 200 }, freshKey);
    const answers = await Promise.all(keys.map((key) => ledger.accept([send(key, `mock-${key}`)])));
    expect(runner.statements).toBe(1);
    expect(answers).toEqual(keys.map((key) => [{ idempotencyKey: key, providerMessageId: `mock-${key}`, calls: 1, first: true }]));
    const rows = await handle.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM mock_provider_sends WHERE idempotency_key = ANY($1::text[])", [
      textArray(keys),
    ]);
    expect(rows).toEqual([{ n: 200 }]);
  });

  test("accepts in later turns are later statements", async () => {
    const runner = countingRunner(handle.sql);
    const ledger = sqlMockLedger(runner);
    await ledger.accept([send(freshKey())]);
    await ledger.accept([send(freshKey())]);
    expect(runner.statements).toBe(2);
  });

  test("one key from several callers in one flush: one acceptance, the others repeats numbered in call order", async () => {
    const runner = countingRunner(handle.sql);
    const ledger = sqlMockLedger(runner);
    const [fresh, known] = [freshKey(), freshKey()];
    await ledger.accept([send(known, "mock-known")]);
    const answers = await Promise.all([
      ledger.accept([send(fresh, "mock-1")]),
      ledger.accept([send(known, "mock-x")]),
      ledger.accept([send(fresh, "mock-2")]),
      ledger.accept([send(known, "mock-y"), send(fresh, "mock-3")]),
    ]);
    expect(runner.statements).toBe(2);
    expect(answers).toEqual([
      [{ idempotencyKey: fresh, providerMessageId: "mock-1", calls: 1, first: true }],
      [{ idempotencyKey: known, providerMessageId: "mock-known", calls: 2, first: false }],
      [{ idempotencyKey: fresh, providerMessageId: "mock-1", calls: 2, first: false }],
      [
        { idempotencyKey: known, providerMessageId: "mock-known", calls: 3, first: false },
        { idempotencyKey: fresh, providerMessageId: "mock-1", calls: 3, first: false },
      ],
    ]);
    expect(await stored(fresh)).toEqual({ provider_message_id: "mock-1", calls: 3 });
    expect(await stored(known)).toEqual({ provider_message_id: "mock-known", calls: 3 });
  });

  test("keys with quotes, backslashes and commas are stored as given", async () => {
    const key = `odd "key", with \\ and {braces} ${crypto.randomUUID()}`;
    const [answer] = await sqlMockLedger(handle.sql).accept([send(key, "mock-odd")]);
    expect(answer).toEqual({ idempotencyKey: key, providerMessageId: "mock-odd", calls: 1, first: true });
    expect(await stored(key)).toEqual({ provider_message_id: "mock-odd", calls: 1 });
  });

  test("the mock provider over it: concurrent sends are one statement and each key is accepted exactly once", async () => {
    const runner = countingRunner(handle.sql);
    const config = { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null, latency_ms: 0, delivery_report_pct: 0 };
    const provider = new MockProvider("sms-mms", { config: () => config, ledger: sqlMockLedger(runner) });
    const ids = Array.from({ length: 50 }, (_, i) => `${Date.now()}${i}`);
    const message = (id: string) => ({ id, channel: "sms" as const, from: "+12015550100", to: "+12015550101", body: "x", attachments: [] });
    const sendAll = () =>
      Promise.all(ids.map((id) => provider.send(message(id), { idempotencyKey: deliveryIdempotencyKey(id), signal: new AbortController().signal })));
    const first = await sendAll();
    expect(runner.statements).toBe(1);
    expect(await sendAll()).toEqual(first);
    expect(new Set(first.map((o) => (o as Extract<ProviderOutcome, { kind: "accepted" }>).providerMessageId)).size).toBe(50);
    for (const id of ids) expect((await stored(deliveryIdempotencyKey(id)))?.calls).toBe(2);
    expect(provider.stats()).toMatchObject({ calls: 100, accepted: 100, repeats: 50 });
  });
});

describe("sqlMockLedger errors", () => {
  test("a failed statement rejects every caller of its flush", async () => {
    const failing: SqlRunner = { query: () => Promise.reject(new Error("connection lost")), transaction: (fn) => fn(failing) };
    const ledger = sqlMockLedger(failing);
    const results = await Promise.allSettled([ledger.accept([send("a")]), ledger.accept([send("b")])]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
  });
});
