/**
 * The messages module's public face: its dependencies, built once per app, and the operations other modules
 * and the routes call. Each operation lives in a file of its own: send.ts (outbound, SPEC §3), receive.ts
 * (inbound, §4), read.ts (one message, a conversation's page, §6).
 */
import type { Database } from "../../db/client.ts";
import { coalesceSameTurn } from "../../db/coalesce.ts";
import type { SqlRunner } from "../../db/runner.ts";
import type { WriteFence, WriteOutcome } from "../../db/write-fence.ts";
import type { RowKey } from "../../http/page-cursor.ts";
import { type BucketShape, type Limiter, perMinute } from "../../limits/limiter.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { RouteCheck } from "../../providers/registry.ts";
import { type MessagePage, readConversationPage } from "./read.ts";
import { type MessageQueries, messageQueries } from "./repository.ts";
import { SendBatcher, type SendBatcherOptions } from "./send-batcher.ts";
import { countStoredBatch } from "./write.ts";

export { getMessage, listConversationMessages, type MessagePage, parseId } from "./read.ts";
export { receiveMessage } from "./receive.ts";
export { sendMessage } from "./send.ts";
export type { MessageInput, WriteResult } from "./write.ts";

export interface MessagesDeps {
  sql: SqlRunner;
  /** Learns whether a write whose connection was lost committed. */
  fence: WriteFence;
  /** Counts what those lookups found. */
  onOutcome: (state: WriteOutcome["state"]) => void;
  /** A conversation's page of messages with snippets; identical concurrent requests share the query. */
  conversationPage: (conversationId: number, limit: number, offset: number, after?: RowKey) => Promise<MessagePage | undefined>;
  /** Writes unkeyed outbound sends, grouping concurrent ones into one commit. */
  batcher: SendBatcher;
  queries: MessageQueries;
  metrics: Metrics;
  /** Where the per-sender buckets live (this process, or Redis shared by every instance). */
  limiter: Limiter;
  /**
   * The per-sender bucket, `API_RATE_LIMIT_PER_SENDER_PER_MIN` a minute: one shape object for the process, by which
   * the in-process limiter finds its table without printing an id per send.
   */
  senderBucket: BucketShape;
  snippetLength: number;
  idempotencyTtlHours: number;
  /** Told after an outbound message committed, so delivery starts without waiting for a poll. */
  onOutboundCommitted?: () => void;
  /** Told after a scheduled send committed, so this instance's promoter can set its timer for an earlier `send_at`. */
  onScheduled?: (sendAt: Date) => void;
  /** Whether the route's providers can carry a send (its sender, their limits); absent: every send can be carried. */
  routeCheck?: RouteCheck;
}

export function messagesDeps(
  db: Database,
  sql: SqlRunner,
  rest: Omit<MessagesDeps, "sql" | "queries" | "batcher" | "conversationPage" | "onOutcome" | "senderBucket"> & {
    batch: Omit<SendBatcherOptions, "fence" | "observe">;
    /** `API_RATE_LIMIT_PER_SENDER_PER_MIN`. */
    senderPerMinute: number;
  },
): MessagesDeps {
  const { batch, senderPerMinute, ...others } = rest;
  const { metrics, fence } = rest;
  const onOutcome = (state: WriteOutcome["state"]) => metrics.writeOutcomes.inc({ outcome: state });
  const conversationPage = coalesceSameTurn(
    (conversationId: number, limit: number, offset: number, after?: RowKey) =>
      readConversationPage(sql, conversationId, limit, offset, after, rest.snippetLength),
    (conversationId, limit, offset, after) => `${conversationId}:${limit}:${offset}:${after ? `${after.at}/${after.id}` : ""}`,
    (extra) => rest.metrics.coalescedReads.inc({ list: "messages" }, extra),
  );
  const batcher = new SendBatcher(sql, {
    ...batch,
    fence,
    observe: {
      batch: (size) => metrics.sendBatchSize.observe(size),
      queued: (depth) => metrics.sendQueueDepth.set(depth),
      refused: () => metrics.sendQueueRejected.inc(),
      outcome: onOutcome,
      // The batch's accepted messages and segments, counted once per batch (send.ts counts keyed sends itself).
      stored: (messages, ids) => countStoredBatch(metrics, messages, ids),
    },
  });
  return { sql, queries: messageQueries(db), batcher, conversationPage, onOutcome, senderBucket: perMinute(senderPerMinute), ...others };
}
