import { formatTimestamp } from "../../domain/timestamp.ts";
import { AppError } from "../../http/errors.ts";
import type { Pagination } from "../../http/pagination.ts";
import { listConversationMessages, type MessagesDeps, parseId } from "../messages/service.ts";
import type { ConversationItem } from "./model.ts";
import type { ConversationQueries, ConversationRow } from "./repository.ts";

export interface ConversationsDeps {
  queries: ConversationQueries;
  messages: MessagesDeps;
}

const toItem = (row: ConversationRow): ConversationItem => ({
  id: String(row.id),
  key: row.key,
  channel: row.transport as ConversationItem["channel"],
  participant_a: row.participantA,
  participant_b: row.participantB,
  message_count: row.messageCount,
  last_activity_at: formatTimestamp(row.lastActivityAt),
});

const meta = (p: Pagination, total: number) => ({ page: p.page, page_size: p.pageSize, total });

export async function listConversations(deps: ConversationsDeps, p: Pagination) {
  const { rows, total } = await deps.queries.page(p.limit, p.offset);
  return { items: rows.map(toItem), meta: meta(p, total) };
}

/** A conversation's messages, oldest first; an unknown conversation is a 404, not an empty page. */
export async function listMessagesOf(deps: ConversationsDeps, rawId: string, p: Pagination) {
  const id = parseId(rawId);
  const total = id === null ? undefined : await deps.queries.messageCount(id);
  if (id === null || total === undefined) throw new AppError("not_found", `conversation ${rawId} does not exist`);
  const items = await listConversationMessages(deps.messages, id, p);
  return { items, meta: meta(p, total) };
}
