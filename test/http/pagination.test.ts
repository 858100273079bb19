import { describe, expect, test } from "bun:test";
import { PAGE_MAX, paginationQuery } from "../../src/http/pagination.ts";

describe("paginationQuery", () => {
  test.each([
    [{ page: "9999999999" }, PAGE_MAX, 50, "a page past 32 bits is clamped, not refused"],
    [{ page: "9".repeat(400) }, PAGE_MAX, 50, "a page too long for a double (Infinity) is clamped"],
    [{ page: "-9999999999" }, 1, 50, "a hugely negative page is page 1"],
    [{ pageSize: "99999999999999999999" }, 1, 50, "a huge pageSize is capped at 50"],
    [{ page_size: "-99999999999999999999" }, 1, 50, "a hugely negative page_size is the default"],
    [{ page: "+7", pageSize: "3" }, 7, 3, "a leading + is an integer"],
  ])("%p → page %i, size %i (%s)", (query, page, pageSize) => {
    const parsed = paginationQuery.parse(query);
    expect(parsed).toEqual({ page, pageSize, limit: pageSize, offset: (page - 1) * pageSize, cursor: undefined });
    expect(Number.isSafeInteger(parsed.offset)).toBe(true);
  });

  test.each(["abc", "1.5", "1e3", "", "١", "0x10", " 1"])("page=%p is not an integer: refused", (page) => {
    expect(paginationQuery.safeParse({ page }).success).toBe(false);
  });

  test("a cursor replaces the offset; pageSize still applies", () => {
    expect(paginationQuery.parse({ cursor: "abc.def", pageSize: "7" })).toMatchObject({ cursor: "abc.def", limit: 7, offset: 0 });
  });

  test.each([
    [{ cursor: "abc.def", page: "1" }, "cursor and page cannot be combined"],
    [{ cursor: "abc.def", page: "3", pageSize: "5" }, "cursor and page cannot be combined"],
    [{ cursor: "" }, "cursor must not be empty"],
    [{ cursor: "x".repeat(257) }, "cursor is not a cursor"],
  ])("%p is refused at path cursor", (query, message) => {
    const result = paginationQuery.safeParse(query);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([["cursor", message]]);
  });
});
