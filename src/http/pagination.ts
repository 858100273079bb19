import { z } from "zod";

export const PAGE_SIZE_DEFAULT = 50;
export const PAGE_SIZE_MAX = 50;
/**
 * Pages past this one are read as this one: it is past the end of any list (50 billion rows), and the offset it
 * makes stays an exact integer that PostgreSQL's bigint OFFSET accepts.
 */
export const PAGE_MAX = 1_000_000_000;

// Any number of digits: SPEC §6 clamps out-of-range values rather than refusing them (`page=9999999999` is a page
// past the end, not an error). Number() turns a very long one into Infinity, which the clamps below absorb.
const integerText = (name: string) =>
  z
    .string({ error: `${name} must be given once` })
    .regex(/^[+-]?\d+$/, `${name} must be an integer`)
    .transform(Number)
    .optional();

/**
 * `page` and `pageSize` (alias `page_size`) of the list routes (SPEC §6): page below 1 → 1, above PAGE_MAX →
 * PAGE_MAX; pageSize 0 or absent → 50, above 50 → 50; a non-integer is a 400.
 */
export const paginationQuery = z
  .object({ page: integerText("page"), pageSize: integerText("pageSize"), page_size: integerText("page_size") })
  .transform(({ page, pageSize, page_size }) => {
    const size = pageSize ?? page_size ?? 0;
    const p = Math.min(PAGE_MAX, Math.max(1, page ?? 1));
    const s = size < 1 ? PAGE_SIZE_DEFAULT : Math.min(size, PAGE_SIZE_MAX);
    return { page: p, pageSize: s, limit: s, offset: (p - 1) * s };
  });

export type Pagination = z.output<typeof paginationQuery>;

export const pageMeta = z.object({ page: z.number().int(), page_size: z.number().int(), total: z.number().int() });
