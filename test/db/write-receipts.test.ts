import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { newWriteToken, scheduleReceiptPurge } from "../../src/db/write-fence.ts";
import { buildTestApp, type TestApp } from "../helpers/app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp();
});
afterAll(() => t.close());

describe("write receipts", () => {
  test("tokens are time-ordered UUIDs, so receipt inserts append to the index", () => {
    const tokens = Array.from({ length: 50 }, newWriteToken);
    expect(tokens.every((x) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(x))).toBe(true);
    expect([...tokens].sort()).toEqual(tokens);
  });

  test("the purge runs at once and deletes only receipts older than a quarter of an hour", async () => {
    const insert = (token: string, age: string) =>
      t.database.sql.query(`INSERT INTO write_receipts (token, result, created_at) VALUES ($1::uuid, '[]'::jsonb, now() - $2::interval)`, [token, age]);
    const [old1, old2, fresh] = [newWriteToken(), newWriteToken(), newWriteToken()];
    await insert(old1, "16 minutes");
    await insert(old2, "2 hours");
    await insert(fresh, "5 minutes");
    const reported = await new Promise<unknown>((resolve) => {
      const stop = scheduleReceiptPurge(t.database.sql, (result) => {
        stop();
        resolve(result);
      });
    });
    expect(reported).toEqual({ value: 2 });
    const left = await t.database.sql.query<{ token: string }>("SELECT token::text FROM write_receipts WHERE token = ANY($1::uuid[])", [`{${old1},${old2},${fresh}}`]);
    expect(left.map((r) => r.token)).toEqual([fresh]);
  });
});
