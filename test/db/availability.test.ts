import { describe, expect, test } from "bun:test";
import { databaseTimeoutKind, isDatabaseUnavailable } from "../../src/db/availability.ts";
import { DatabaseTimeoutError } from "../../src/db/statement-deadline.ts";

const withCode = (code: string) => Object.assign(new Error(code), { code });
/** How drizzle hands a driver error up: wrapped, the driver's error as `cause`. */
const wrapped = (cause: unknown) => new Error("Failed query: select 1", { cause });

describe("isDatabaseUnavailable", () => {
  test.each([
    ["the client statement deadline", new DatabaseTimeoutError(1250)],
    ["the same, wrapped by drizzle", wrapped(new DatabaseTimeoutError(1250))],
    ["the server's statement_timeout (57014)", withCode("57014")],
    ["the server's idle-in-transaction timeout (25P03)", withCode("25P03")],
    ["the connect timeout", withCode("CONNECT_TIMEOUT")],
    ["a closed connection", withCode("CONNECTION_CLOSED")],
  ])("is true for %s: 503 with Retry-After", (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  test.each([
    ["a unique violation", withCode("23505")],
    ["a syntax error", withCode("42601")],
    ["a plain error", new Error("boom")],
  ])("is false for %s", (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});

describe("databaseTimeoutKind", () => {
  test.each([
    [new DatabaseTimeoutError(1250), "statement"],
    [wrapped(withCode("57014")), "statement"],
    [withCode("CONNECT_TIMEOUT"), "connect"],
    [withCode("CONNECTION_CLOSED"), undefined],
    [withCode("23505"), undefined],
  ])("names the bound %p ran into: %p", (error, kind) => {
    expect(databaseTimeoutKind(error)).toBe(kind as "statement" | "connect" | undefined);
  });
});
