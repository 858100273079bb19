import type { SqlRunner } from "../../db/runner.ts";
import { snippet } from "../../domain/snippet.ts";
import { formatTimestamp } from "../../domain/timestamp.ts";
import { AppError } from "../../http/errors.ts";
import type { RowKey } from "../../http/page-cursor.ts";
import type { MessageDetail, MessageItem } from "./model.ts";
import { conversationMessagesPage, type MessageJson, messageById } from "./repository.ts";
import type { MessagesDeps } from "./service.ts";

export interface MessagePage {
  items: MessageItem[];
  total: number;
  /** Where the next page starts; null on the last page. */
  next: RowKey | null;
}

/** Parses a path id: positive decimal integers only; anything else names no message. */
export function parseId(raw: string): number | null {
  if (!/^[1-9][0-9]{0,15}$/.test(raw)) return null;
  const id = Number(raw);
  return Number.isSafeInteger(id) ? id : null;
}

/**
 * The one TypeScript step of building a message item: the database renders the rest (repository.ts), the
 * snippet needs grapheme clusters. Completes the item in place, since pages hold up to 50 of them.
 */
export function withSnippet<T extends MessageJson>(item: T, snippetLength: number): T & { snippet: string } {
  const completed = item as T & { snippet: string };
  completed.snippet = snippet(item.body, snippetLength);
  return completed;
}

/** One page of a conversation's messages with snippets; undefined when there is no such conversation. */
export async function readConversationPage(
  sql: SqlRunner,
  conversationId: number,
  limit: number,
  offset: number,
  after: RowKey | undefined,
  snippetLength: number,
): Promise<MessagePage | undefined> {
  const found = await conversationMessagesPage(sql, conversationId, limit, offset, after);
  if (!found) return undefined;
  for (const item of found.items) withSnippet(item, snippetLength);
  return found as MessagePage;
}

/** One message with its delivery: provider, provider id, failure reason and attempts (`GET /api/messages/{id}`). */
export async function getMessage(deps: MessagesDeps, rawId: string): Promise<MessageDetail> {
  const id = parseId(rawId);
  const item = id === null ? undefined : await messageById(deps.sql, id);
  if (!item) throw new AppError("not_found", `message ${rawId} does not exist`);
  const attempts = await deps.queries.attempts(id!);
  return {
    ...withSnippet(item, deps.snippetLength),
    attempts: attempts.map((a) => ({
      attempt: a.attempt,
      provider: a.provider,
      outcome: a.outcome,
      status_code: a.statusCode,
      error: a.error,
      duration_ms: a.durationMs,
      started_at: formatTimestamp(a.startedAt),
    })),
  };
}

/**
 * One page of a conversation's messages, oldest first (ties by id): the rows after `after` when given, else
 * from the start; undefined when there is no such conversation.
 */
export function listConversationMessages(
  deps: MessagesDeps,
  conversationId: number,
  page: { limit: number; offset: number },
  after?: RowKey,
): Promise<MessagePage | undefined> {
  return deps.conversationPage(conversationId, page.limit, page.offset, after);
}
