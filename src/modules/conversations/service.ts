import { coalesceSameTurn } from "../../db/coalesce.ts";
import { AppError } from "../../http/errors.ts";
import type { Pagination } from "../../http/pagination.ts";
import { listConversationMessages, type MessagesDeps, parseId } from "../messages/service.ts";
import { conversationsPage, deleteConversation } from "./repository.ts";

export interface ConversationsDeps {
  messages: MessagesDeps;
  /** One page of conversations; identical concurrent requests share the query (db/coalesce.ts). */
  page: (limit: number, offset: number) => Promise<{ itemsJson: string; total: number }>;
}

export function conversationsDeps(messages: MessagesDeps): ConversationsDeps {
  return {
    messages,
    page: coalesceSameTurn(
      (limit: number, offset: number) => conversationsPage(messages.sql, limit, offset),
      (limit, offset) => `${limit}:${offset}`,
      (extra) => messages.metrics.coalescedReads.inc({ list: "conversations" }, extra),
    ),
  };
}

const meta = (p: Pagination, total: number) => ({ page: p.page, page_size: p.pageSize, total });

/**
 * The conversations page as JSON text: the items arrive from the database already serialized
 * (see conversations/repository.ts), so they are embedded rather than parsed and serialized again.
 */
export async function listConversations(deps: ConversationsDeps, p: Pagination): Promise<string> {
  const { itemsJson, total } = await deps.page(p.limit, p.offset);
  return `{"items":${itemsJson},"meta":${JSON.stringify(meta(p, total))}}`;
}

/** A conversation's messages, oldest first; an unknown conversation is a 404, not an empty page. */
export async function listMessagesOf(deps: ConversationsDeps, rawId: string, p: Pagination) {
  const id = parseId(rawId);
  const page = id === null ? undefined : await listConversationMessages(deps.messages, id, p);
  if (!page) throw new AppError("not_found", `conversation ${rawId} does not exist`);
  return { items: page.items, meta: meta(p, page.total) };
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
