import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type DatabaseHandle, openPostgres } from "../../src/db/client.ts";
import { nullableTextArray, textArray } from "../../src/db/sql-arrays.ts";
import { createEmbeddedTestDatabase, createTestDatabase } from "../helpers/database.ts";

// The array literals every batch statement sends: what PostgreSQL reads back must be the values given, whatever
// they hold, on both databases.
const CASES: [string, string[]][] = [
  ["none", []],
  ["plain values", ["1", "2026-01-01T00:00:00.000Z", "sms-mms", "mock-2f1c"]],
  ["the empty string", ["", "x", ""]],
  ["quotes and backslashes", ['say "hi"', "C:\\path", '\\"', "plain"]],
  ["what array syntax means", ["a,b", "{c}", "NULL", "null", " padded ", "tab\tand\nnewline"]],
  ["unicode", ["héllo", "😀", "日本"]],
];

describe.each(["postgres", "embedded"] as const)("array literals on %s", (kind) => {
  let database: DatabaseHandle;
  let close: () => Promise<void>;
  beforeAll(async () => {
    if (kind === "embedded") {
      const embedded = await createEmbeddedTestDatabase();
      database = embedded.handle;
      close = embedded.remove;
    } else {
      const pg = await createTestDatabase();
      database = openPostgres(pg.url, 1);
      close = async () => {
        await database.close();
        await pg.drop();
      };
    }
  }, 60_000);
  afterAll(() => close());

  // Read back as JSON text: what PostgreSQL parsed, not how a driver decodes arrays.
  const read = async (literal: string) =>
    JSON.parse((await database.sql.query<{ v: string }>("SELECT array_to_json($1::text[])::text AS v", [literal]))[0]!.v) as (string | null)[];

  test.each(CASES)("textArray of %s reads back as given", async (_name, values) => {
    expect(await read(textArray(values))).toEqual(values);
  });

  test.each(CASES)("nullableTextArray of %s, alone, with NULLs between and as NULLs only, reads back as given", async (_name, values) => {
    expect(await read(nullableTextArray(values))).toEqual(values);
    const withNulls = values.flatMap((v) => [v, null]);
    expect(await read(nullableTextArray(withNulls))).toEqual(withNulls);
    const nulls = values.map(() => null);
    expect(await read(nullableTextArray([...nulls, undefined]))).toEqual([...nulls, null]);
  });
});
