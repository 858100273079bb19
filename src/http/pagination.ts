import { z } from "zod";
import { CURSOR_MAX_LENGTH } from "./page-cursor.ts";

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
 * `cursor` (http/page-cursor.ts) replaces `page`: given both, the request is a 400, since they name two
 * different starting points. Its contents are checked by the service, which knows the list and the key.
 */
export const paginationQuery = z
  .object({
    page: integerText("page"),
    pageSize: integerText("pageSize"),
    page_size: integerText("page_size"),
    cursor: z
      .string({ error: "cursor must be given once" })
      .min(1, "cursor must not be empty")
      .max(CURSOR_MAX_LENGTH, "cursor is not a cursor")
      .optional()
      .meta({
        description:
          "Opaque: the meta.next_cursor of the previous response. Reads the page after it by index (constant " +
          "cost at any depth, unlike a large page). Not combinable with page.",
      }),
  })
  .superRefine(({ page, cursor }, ctx) => {
    if (page !== undefined && cursor !== undefined) {
      ctx.addIssue({ code: "custom", path: ["cursor"], message: "cursor and page cannot be combined" });
    }
  })
  .transform(({ page, pageSize, page_size, cursor }) => {
    const size = pageSize ?? page_size ?? 0;
    const p = Math.min(PAGE_MAX, Math.max(1, page ?? 1));
    const s = size < 1 ? PAGE_SIZE_DEFAULT : Math.min(size, PAGE_SIZE_MAX);
    return { page: p, pageSize: s, limit: s, offset: cursor === undefined ? (p - 1) * s : 0, cursor };
  });

export type Pagination = z.output<typeof paginationQuery>;

/**
 * `page` is null on a page read by cursor: its position is not counted (that would cost what the cursor saves).
 * `next_cursor` is in every answer, page-based ones included, so a client can switch to cursors at any page.
 */
export const pageMeta = z.object({
  page: z.number().int().nullable().meta({ description: "The page number asked for; null when the page was read by cursor" }),
  page_size: z.number().int(),
  total: z.number().int(),
  next_cursor: z
    .string()
    .nullable()
    .meta({ description: "Pass as `cursor` to read the page after this one; null when this is the last page" }),
});
