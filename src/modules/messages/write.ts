import { type Channel, transportOf } from "../../domain/channel.ts";
import { conversationKey } from "../../domain/conversation-key.ts";
import { parseRfc3339 } from "../../domain/timestamp.ts";
import type { WriteAnswer } from "../../http/idempotency.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { Accepted } from "./model.ts";
import type { NewMessage, StoredIds } from "./repository.ts";

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
export type WriteResult = WriteAnswer<Accepted & { duplicate?: boolean }>;

export const accepted = (ids: StoredIds): Accepted => ({ status: "accepted", id: ids.id, conversation_id: ids.conversation_id });

/** The row a validated input becomes: its transport, conversation key and initial status derived once. */
export function newMessage(input: MessageInput, direction: NewMessage["direction"], providerMessageId: string | null): NewMessage {
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

/** A replay is counted as a replay, anything else as an accepted message of its channel and direction. */
export function countWrite(metrics: Metrics, result: WriteResult, channel: Channel, direction: "outbound" | "inbound"): void {
  if (result.replayed) metrics.idempotentReplays.inc();
  else metrics.messagesAccepted.inc({ channel, direction });
}
