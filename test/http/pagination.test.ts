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
    expect(parsed).toEqual({ page, pageSize, limit: pageSize, offset: (page - 1) * pageSize });
    expect(Number.isSafeInteger(parsed.offset)).toBe(true);
  });

  test.each(["abc", "1.5", "1e3", "", "١", "0x10", " 1"])("page=%p is not an integer: refused", (page) => {
    expect(paginationQuery.safeParse({ page }).success).toBe(false);
  });
});
