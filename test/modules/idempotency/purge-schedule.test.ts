import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { scheduleIdempotencyPurge } from "../../../src/modules/idempotency/service.ts";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp();
});
afterAll(() => t.close());

const insertKey = (key: string, expiresSql: string) =>
  t.database.sql.query(
    `INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body, expires_at)
     VALUES ('s', $1, 'h', 202, '{}'::jsonb, ${expiresSql})`,
    [key],
  );

describe("scheduled purge of idempotency keys", () => {
  test("runs at once on start, deletes only expired keys and reports the count", async () => {
    await insertKey("old-1", "now() - interval '1 hour'");
    await insertKey("old-2", "now() - interval '1 second'");
    await insertKey("live", "now() + interval '24 hours'");
    const reported = new Promise<unknown>((resolve) => {
      const stop = scheduleIdempotencyPurge(t.database.sql, (result) => {
        stop();
        resolve(result);
      });
    });
    expect(await reported).toEqual({ deleted: 2 });
    const left = await t.database.sql.query<{ key: string }>("SELECT key FROM idempotency_keys ORDER BY key");
    expect(left.map((r) => r.key)).toEqual(["live"]);
  });

  test("reports a failing purge instead of throwing", async () => {
    const failing = { query: () => Promise.reject(new Error("boom")), transaction: () => Promise.reject(new Error("boom")) };
    const reported = await new Promise<unknown>((resolve) => {
      const stop = scheduleIdempotencyPurge(failing, (result) => {
        stop();
        resolve(result);
      });
    });
    expect((reported as { error: Error }).error.message).toBe("boom");
  });
});
