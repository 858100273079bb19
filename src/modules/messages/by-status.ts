/**
 * `GET /api/messages?status=…` (SPEC §3): the messages of one status, oldest first, by page or cursor, so an
 * operator can see what is waiting (`scheduled`, `queued`) and cancel it, or what `failed`.
 */
import { validationFailed } from "../../http/errors.ts";
import { type CursorList, decodeCursor, encodeCursor, type RowKey } from "../../http/page-cursor.ts";
import type { Pagination } from "../../http/pagination.ts";
import type { MessageItem } from "./model.ts";
import { withSnippet } from "./read.ts";
import { messagesByStatusPage } from "./repository.ts";
import type { MessagesDeps } from "./service.ts";

export async function listMessagesByStatus(deps: MessagesDeps, cursorKey: () => Promise<Uint8Array>, status: string, p: Pagination) {
  const list: CursorList = { kind: "status", status };
  let after: RowKey | undefined;
  if (p.cursor !== undefined) {
    const decoded = decodeCursor(await cursorKey(), list, p.cursor);
    if ("refused" in decoded) throw validationFailed([{ path: "query.cursor", message: `cursor ${decoded.refused}` }]);
    after = decoded;
  }
  const page = await messagesByStatusPage(deps.sql, status, p.limit, p.offset, after);
  const items: MessageItem[] = page.items.map((item) => withSnippet(item, deps.snippetLength));
  const nextCursor = page.next && encodeCursor(await cursorKey(), list, page.next);
  return { items, meta: { page: p.cursor === undefined ? p.page : null, page_size: p.pageSize, total: page.total, next_cursor: nextCursor } };
}
