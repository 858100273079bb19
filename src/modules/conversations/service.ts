import { coalesceSameTurn } from "../../db/coalesce.ts";
import { AppError, validationFailed } from "../../http/errors.ts";
import { type CursorList, decodeCursor, encodeCursor, type RowKey } from "../../http/page-cursor.ts";
import type { Pagination } from "../../http/pagination.ts";
import { listConversationMessages, type MessagesDeps, parseId } from "../messages/service.ts";
import { type ConversationsPage, conversationsPage, cursorSecret, deleteConversation } from "./repository.ts";

export interface ConversationsDeps {
  messages: MessagesDeps;
  /** One page of conversations; identical concurrent requests share the query (db/coalesce.ts). */
  page: (limit: number, offset: number, after?: RowKey) => Promise<ConversationsPage>;
  /** The key page cursors are signed with, read from the database once (see cursorSecret). */
  cursorKey: () => Promise<Uint8Array>;
}

export function conversationsDeps(messages: MessagesDeps): ConversationsDeps {
  return {
    messages,
    page: coalesceSameTurn(
      (limit: number, offset: number, after?: RowKey) => conversationsPage(messages.sql, limit, offset, after),
      (limit, offset, after) => `${limit}:${offset}:${after ? `${after.at}/${after.id}` : ""}`,
      (extra) => messages.metrics.coalescedReads.inc({ list: "conversations" }, extra),
    ),
    cursorKey: onceUntilFailure(() => cursorSecret(messages.sql)),
  };
}

/** `load` run once and its result kept; a failure is not kept, so the next caller tries again. */
function onceUntilFailure<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= load().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

/** The row key of the request's cursor, if it has one; a cursor that is not one of this list's is a 400. */
async function cursorAfter(deps: ConversationsDeps, list: CursorList, p: Pagination): Promise<RowKey | undefined> {
  if (p.cursor === undefined) return undefined;
  const decoded = decodeCursor(await deps.cursorKey(), list, p.cursor);
  if ("refused" in decoded) {
    throw validationFailed([{ path: "query.cursor", message: `cursor ${decoded.refused}` }]);
  }
  return decoded;
}

async function meta(deps: ConversationsDeps, list: CursorList, p: Pagination, total: number, next: RowKey | null) {
  const nextCursor = next && encodeCursor(await deps.cursorKey(), list, next);
  return { page: p.cursor === undefined ? p.page : null, page_size: p.pageSize, total, next_cursor: nextCursor };
}

const ALL_CONVERSATIONS: CursorList = { kind: "conversations" };

/**
 * The conversations page as JSON text: the items arrive from the database already serialized
 * (see conversations/repository.ts), so they are embedded rather than parsed and serialized again.
 */
export async function listConversations(deps: ConversationsDeps, p: Pagination): Promise<string> {
  const after = await cursorAfter(deps, ALL_CONVERSATIONS, p);
  const { itemsJson, total, next } = await deps.page(p.limit, p.offset, after);
  return `{"items":${itemsJson},"meta":${JSON.stringify(await meta(deps, ALL_CONVERSATIONS, p, total, next))}}`;
}

/** A conversation's messages, oldest first; an unknown conversation is a 404, not an empty page. */
export async function listMessagesOf(deps: ConversationsDeps, rawId: string, p: Pagination) {
  const id = parseId(rawId);
  const list: CursorList = { kind: "messages", conversationId: String(id) };
  const after = id === null ? undefined : await cursorAfter(deps, list, p);
  const page = id === null ? undefined : await listConversationMessages(deps.messages, id, p, after);
  if (!page) throw new AppError("not_found", `conversation ${rawId} does not exist`);
  return { items: page.items, meta: await meta(deps, list, p, page.total, page.next) };
}

/**
 * Deletes a conversation with its messages, their delivery attempts and jobs (an operator answering a privacy
 * request). Stored Idempotency-Key responses stay: they hold ids, not content, and expire on their own. An id
 * that is not a conversation's, well formed or not, is a 404 like GET's.
 */
export async function deleteConversationById(deps: ConversationsDeps, rawId: string): Promise<void> {
  const id = parseId(rawId);
  if (id === null || !(await deleteConversation(deps.messages.sql, id))) {
    throw new AppError("not_found", `conversation ${rawId} does not exist`);
  }
}
