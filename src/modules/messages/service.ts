import type { Database } from "../../db/client.ts";
import { coalesceSameTurn } from "../../db/coalesce.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { type Channel, normalizeAddress, transportOf } from "../../domain/channel.ts";
import { conversationKey } from "../../domain/conversation-key.ts";
import { snippet } from "../../domain/snippet.ts";
import { formatTimestamp, parseRfc3339 } from "../../domain/timestamp.ts";
import type { TokenBuckets } from "../../domain/token-bucket.ts";
import { AppError } from "../../http/errors.ts";
import { rateLimited } from "../../http/rate-limit.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { claimIdempotencyKey, type IdempotencyRequest, rememberResponse } from "../idempotency/service.ts";
import type { Accepted, MessageDetail, MessageItem } from "./model.ts";
import { SendBatcher, type SendBatcherOptions } from "./send-batcher.ts";
import {
  conversationMessagesPage,
  findInbound,
  insertMessage,
  lockInboundProviderId,
  type MessageQueries,
  type MessageRow,
  messageQueries,
  type NewMessage,
  type StoredIds,
} from "./repository.ts";

export interface MessagesDeps {
  sql: SqlRunner;
  /** A conversation's page of messages with snippets; identical concurrent requests share the query. */
  conversationPage: (conversationId: number, limit: number, offset: number) => Promise<MessagePage | undefined>;
  /** Writes unkeyed outbound sends, grouping concurrent ones into one commit. */
  batcher: SendBatcher;
  queries: MessageQueries;
  metrics: Metrics;
  senderBuckets: TokenBuckets;
  snippetLength: number;
  idempotencyTtlHours: number;
}

export function messagesDeps(
  db: Database,
  sql: SqlRunner,
  rest: Omit<MessagesDeps, "sql" | "queries" | "batcher" | "conversationPage"> & { batch: SendBatcherOptions },
): MessagesDeps {
  const { batch, ...others } = rest;
  const conversationPage = coalesceSameTurn(
    async (conversationId: number, limit: number, offset: number) => {
      const found = await conversationMessagesPage(sql, conversationId, limit, offset);
      if (!found) return undefined;
      for (const item of found.items) (item as MessageItem).snippet = snippet(item.body, rest.snippetLength);
      return found as MessagePage;
    },
    (conversationId, limit, offset) => `${conversationId}:${limit}:${offset}`,
    (extra) => rest.metrics.coalescedReads.inc({ list: "messages" }, extra),
  );
  const batcher = new SendBatcher(sql, { ...batch, onBatch: (size) => rest.metrics.sendBatchSize.observe(size) });
  return { sql, queries: messageQueries(db), batcher, conversationPage, ...others };
}

export interface MessagePage {
  items: MessageItem[];
  total: number;
}

/** A message as a client hands it in, already validated. */
export interface MessageInput {
  channel: Channel;
  from: string;
  to: string;
  body: string;
  attachments: string[];
  timestamp: string;
}

/** The answer of a write: a fresh 202, a replay of a stored response, or a provider's duplicate. */
export interface WriteResult {
  status: number;
  body: Accepted & { duplicate?: boolean };
  replayed: boolean;
}

const accepted = (ids: StoredIds): Accepted => ({ status: "accepted", id: ids.id, conversation_id: ids.conversation_id });

function newMessage(input: MessageInput, direction: NewMessage["direction"], providerMessageId: string | null): NewMessage {
  const transport = transportOf(input.channel);
  const key = conversationKey(transport, input.from, input.to);
  return {
    direction,
    channel: input.channel,
    transport,
    from: input.from,
    to: input.to,
    body: input.body,
    attachments: input.attachments,
    status: direction === "outbound" ? "queued" : "received",
    providerMessageId,
    timestamp: parseRfc3339(input.timestamp)!,
    conversationKey: key.key,
    participantA: key.participantA,
    participantB: key.participantB,
  };
}

/**
 * Accepts an outbound message (SPEC §3): sender rate limit, then one commit of the message, its
 * conversation update and its delivery job (grouped with concurrent sends by the batcher). With an
 * Idempotency-Key one transaction claims the key, charges the sender, writes and stores the response,
 * so a replay can never send twice and is never charged.
 */
export async function sendMessage(deps: MessagesDeps, input: MessageInput, idem?: IdempotencyRequest): Promise<WriteResult> {
  const message = newMessage(input, "outbound", null);
  let result: WriteResult;
  if (idem) {
    result = await deps.sql.transaction(async (tx) => {
      const stored = await claimIdempotencyKey(tx, idem);
      // A replay is not a send: it is answered before the sender is charged. A refusal below rolls the
      // transaction back, so a rate-limited request does not consume its key.
      if (stored) return { status: stored.status, body: stored.body as Accepted, replayed: true };
      chargeSender(deps, message);
      const body = accepted(await insertMessage(tx, message));
      await rememberResponse(tx, idem, { status: 202, body }, deps.idempotencyTtlHours);
      return { status: 202, body, replayed: false };
    });
  } else {
    chargeSender(deps, message);
    result = { status: 202, body: accepted(await deps.batcher.submit(message)), replayed: false };
  }
  count(deps.metrics, result, input.channel, "outbound");
  return result;
}

/** The per-sender limit of SPEC §3: a token bucket per normalized `from` on its transport. */
function chargeSender(deps: MessagesDeps, message: NewMessage): void {
  const decision = deps.senderBuckets.take(`${message.transport}:${normalizeAddress(message.transport, message.from)}`, Date.now());
  if (!decision.allowed) {
    deps.metrics.rateLimited.inc({ limit: "sender" });
    throw rateLimited(decision, "this sender is sending too fast");
  }
}

/**
 * Stores an inbound message (SPEC §4) unless this provider id was seen on this transport before,
 * in which case nothing is stored and the first message's ids are answered.
 */
export async function receiveMessage(
  deps: MessagesDeps,
  input: MessageInput & { providerMessageId: string },
  idem?: IdempotencyRequest,
): Promise<WriteResult> {
  const message = newMessage(input, "inbound", input.providerMessageId);
  const result = await deps.sql.transaction(async (tx): Promise<WriteResult> => {
    if (idem) {
      const stored = await claimIdempotencyKey(tx, idem);
      if (stored) return { status: stored.status, body: stored.body as Accepted, replayed: true };
    }
    await lockInboundProviderId(tx, message.transport, input.providerMessageId);
    const first = await findInbound(tx, message.transport, input.providerMessageId);
    const answer: WriteResult = first
      ? { status: 202, body: { ...accepted(first), duplicate: true }, replayed: false }
      : { status: 202, body: accepted(await insertMessage(tx, message)), replayed: false };
    if (idem) await rememberResponse(tx, idem, { status: answer.status, body: answer.body }, deps.idempotencyTtlHours);
    return answer;
  });
  if (result.body.duplicate && !result.replayed) deps.metrics.webhookDuplicates.inc();
  else count(deps.metrics, result, input.channel, "inbound");
  return result;
}

function count(metrics: Metrics, result: WriteResult, channel: Channel, direction: "outbound" | "inbound"): void {
  if (result.replayed) metrics.idempotentReplays.inc();
  else metrics.messagesAccepted.inc({ channel, direction });
}

/** Parses a path id: positive decimal integers only; anything else names no message. */
export function parseId(raw: string): number | null {
  if (!/^[1-9][0-9]{0,15}$/.test(raw)) return null;
  const id = Number(raw);
  return Number.isSafeInteger(id) ? id : null;
}

export function toMessageItem(row: MessageRow, snippetLength: number): MessageItem {
  const channel = row.channel as MessageItem["channel"];
  return {
    id: String(row.id),
    conversation_id: String(row.conversationId),
    direction: row.direction as MessageItem["direction"],
    channel,
    type: channel,
    from: row.fromAddr,
    to: row.toAddr,
    body: row.body,
    snippet: snippet(row.body, snippetLength),
    attachments: row.attachments ?? [],
    status: row.status,
    timestamp: formatTimestamp(row.timestamp),
  };
}

/** One message with its delivery attempts (`GET /api/messages/{id}`). */
export async function getMessage(deps: MessagesDeps, rawId: string): Promise<MessageDetail> {
  const id = parseId(rawId);
  const row = id === null ? undefined : await deps.queries.byId(id);
  if (!row) throw new AppError("not_found", `message ${rawId} does not exist`);
  const attempts = await deps.queries.attempts(row.id);
  return {
    ...toMessageItem(row, deps.snippetLength),
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

/** One page of a conversation's messages, oldest first (ties by id); undefined when there is no such conversation. */
export function listConversationMessages(
  deps: MessagesDeps,
  conversationId: number,
  page: { limit: number; offset: number },
): Promise<MessagePage | undefined> {
  return deps.conversationPage(conversationId, page.limit, page.offset);
}
