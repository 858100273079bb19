// The embedded database reports every statement this process runs once it settles (db/statement-activity.ts), so
// a loop waiting for others' writes can sleep instead of polling; its own statements, run on `quietSql`, do not.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import type { DatabaseHandle } from "../../src/db/client.ts";
import { createEmbeddedTestDatabase, type TestEmbeddedDatabase } from "../helpers/database.ts";

describe("statement activity of the embedded database", () => {
  let embedded: TestEmbeddedDatabase;
  let database: DatabaseHandle;
  let reports = 0;
  let unsubscribe: () => void;
  beforeAll(async () => {
    embedded = await createEmbeddedTestDatabase();
    database = embedded.handle;
    unsubscribe = database.activity!.subscribe(() => reports++);
  });
  afterAll(async () => {
    unsubscribe();
    await embedded.remove();
  });

  test("a statement through the SqlRunner and one through drizzle each report once, after they settle", async () => {
    reports = 0;
    const pending = database.sql.query("SELECT 1 AS one");
    expect(reports).toBe(0);
    await pending;
    expect(reports).toBe(1);
    await database.db.execute(sql`SELECT 2`);
    expect(reports).toBe(2);
  });

  test("a transaction reports once, at its end, not per statement inside it", async () => {
    reports = 0;
    let inside = -1;
    await database.sql.transaction(async (tx) => {
      await tx.query("SELECT 1");
      await tx.query("SELECT 2");
      inside = reports;
    });
    expect(inside).toBe(0);
    expect(reports).toBe(1);
  });

  test("a failing statement reports too, and its caller still gets the error", async () => {
    reports = 0;
    await expect(database.sql.query("SELECT * FROM no_such_table")).rejects.toThrow(/no_such_table/);
    expect(reports).toBe(1);
  });

  test("statements on quietSql report nothing, and an unsubscribed listener hears nothing", async () => {
    reports = 0;
    const quiet = database.activity!.quietSql;
    expect(await quiet.query<{ one: number }>("SELECT 1 AS one")).toEqual([{ one: 1 }]);
    await quiet.transaction((tx) => tx.query("SELECT 1"));
    expect(reports).toBe(0);

    let other = 0;
    const off = database.activity!.subscribe(() => other++);
    await database.sql.query("SELECT 1");
    off();
    await database.sql.query("SELECT 1");
    expect(other).toBe(1);
    expect(reports).toBe(2);
  });
});
