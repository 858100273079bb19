import { isConnectionLoss } from "../../db/availability.ts";
import { newWriteToken, type WriteFence, type WriteOutcome } from "../../db/write-fence.ts";
import { type Channel, transportOf } from "../../domain/channel.ts";
import { conversationKey, conversationKeyOf } from "../../domain/conversation-key.ts";
import { replyPair, sendPair } from "../../domain/opt-out.ts";
import { smsSegments } from "../../domain/sms-segments.ts";
import { defaultSubject } from "../../domain/email-text.ts";
import { parseRfc3339 } from "../../domain/timestamp.ts";
import { AppError } from "../../http/errors.ts";
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
  /** Email only, already trimmed; blank, null or absent takes the default subject. */
  subject?: string | null | undefined;
  attachments: string[];
  timestamp: string;
  /** Outbound only: when to send (RFC 3339, bounds already checked); absent, null or not in the future: at once. */
  sendAt?: string | null | undefined;
}

/** The answer of a write: a fresh 202, a replay of a stored response, or a provider's duplicate. */
export type WriteResult = WriteAnswer<Accepted & { duplicate?: boolean }>;

export const accepted = (ids: StoredIds): Accepted => ({ status: "accepted", id: ids.id, conversation_id: ids.conversation_id });

/**
 * A stored 202 as it is replayed: in the key order of the first answer, as a replay must carry the same bytes as
 * the answer it repeats. A response stored since migration 0021 is read from its text and already is; one stored
 * before comes back from the jsonb column, which keeps its keys sorted by length (`id` first), and is put back in
 * order here (the send routes no longer run a response schema that did it per request).
 */
export function replayedAccepted(stored: unknown): Accepted & { duplicate?: boolean } {
  const body = stored as Accepted & { duplicate?: boolean };
  return { ...accepted(body), ...(body.duplicate !== undefined && { duplicate: body.duplicate }) };
}

/**
 * The row a validated input becomes: its transport, conversation key and initial status derived once, with
 * an email's subject (the body's text when none was given) or an SMS/MMS body's encoding, segments and the
 * opt-out pair it concerns.
 */
export function newMessage(input: MessageInput, direction: NewMessage["direction"], providerMessageId: string | null): NewMessage {
  const transport = transportOf(input.channel);
  const email = input.channel === "email";
  // An SMS/MMS's opt-out pair holds both numbers normalized: its conversation key is made of the same two.
  const optOutPair = email ? null : direction === "outbound" ? sendPair(input.from, input.to) : replyPair(input.from, input.to);
  const key = optOutPair ? conversationKeyOf(transport, optOutPair.from, optOutPair.to) : conversationKey(transport, input.from, input.to);
  const sms = email ? null : smsSegments(input.body);
  const sendAt = direction === "outbound" ? futureSendAt(input.sendAt) : null;
  return {
    direction,
    channel: input.channel,
    transport,
    from: input.from,
    to: input.to,
    body: input.body,
    // Without one, the body's text (an HTML body's tags removed, entities decoded), cut to 78 characters (SPEC §3).
    subject: email ? input.subject || defaultSubject(input.body) : null,
    segments: sms?.segments ?? null,
    encoding: sms?.encoding ?? null,
    attachments: input.attachments,
    status: direction === "inbound" ? "received" : sendAt ? "scheduled" : "queued",
    sendAt,
    providerMessageId,
    timestamp: parseRfc3339(input.timestamp)!,
    conversationKey: key.key,
    participantA: key.participantA,
    participantB: key.participantB,
    optOutPair,
  };
}

/**
 * The time a send waits for, or null to send it at once: a `send_at` not in the future (the model allows up to
 * 60 s in the past, for clock skew) is sent now, and is not recorded as a schedule it never had.
 */
function futureSendAt(sendAt: string | null | undefined): Date | null {
  const at = sendAt ? parseRfc3339(sendAt) : null;
  return at && at.getTime() > Date.now() ? at : null;
}

/**
 * A replay is counted as a replay, anything else as an accepted message of its channel and direction; an
 * accepted outbound SMS/MMS also adds its segments, what the carriers will bill for it.
 */
export function countWrite(metrics: Metrics, result: WriteResult, message: NewMessage): void {
  if (result.replayed) {
    metrics.idempotentReplays.inc();
    return;
  }
  metrics.messagesAccepted.inc({ channel: message.channel, direction: message.direction });
  if (message.direction === "outbound" && message.encoding !== null && message.segments !== null) {
    metrics.smsSegments.inc({ encoding: message.encoding }, message.segments);
  }
}

/**
 * countWrite for the outbound messages of one batch that were stored (a null is one refused for an opt-out): one
 * increment per channel and encoding instead of one per message, each of which hashes its labels.
 */
export function countStoredBatch(metrics: Metrics, messages: readonly NewMessage[], stored: readonly unknown[]): void {
  const accepted = new Map<NewMessage["channel"], number>();
  const segments = new Map<NonNullable<NewMessage["encoding"]>, number>();
  messages.forEach((m, i) => {
    if (stored[i] === null || stored[i] === undefined) return;
    accepted.set(m.channel, (accepted.get(m.channel) ?? 0) + 1);
    if (m.encoding !== null && m.segments !== null) segments.set(m.encoding, (segments.get(m.encoding) ?? 0) + m.segments);
  });
  for (const [channel, n] of accepted) metrics.messagesAccepted.inc({ channel, direction: "outbound" }, n);
  for (const [encoding, n] of segments) metrics.smsSegments.inc({ encoding }, n);
}

/** 503 for a write whose commit could not be confirmed or ruled out in time (SPEC §2 `outcome_unknown`). */
export const outcomeUnknown = (cause: unknown) =>
  new AppError(
    "outcome_unknown",
    "the database connection was lost and whether the message was stored could not be learned in time; retry with an Idempotency-Key so a retry cannot store it twice",
    { headers: { "retry-after": "2" }, cause },
  );

/**
 * Runs one write of the message path under a token of its own (the statement stores a receipt under it) and
 * makes its answer match the database: when the connection is lost, the token is fenced (db/write-fence.ts)
 * and a committed write is answered from its receipt as if nothing had happened, one that did not commit
 * rethrows the connection error (503, nothing stored) and an unknown outcome is `outcome_unknown`. `onLost` is told
 * when the connection was lost, before the fence runs.
 */
export async function writeOnce<T>(
  fence: WriteFence,
  onOutcome: (outcome: WriteOutcome["state"]) => void,
  write: (token: string) => Promise<T>,
  fromReceipt: (ids: (StoredIds | null)[]) => T,
  onLost?: () => void,
): Promise<T> {
  const token = newWriteToken();
  try {
    return await write(token);
  } catch (err) {
    if (!isConnectionLoss(err)) throw err;
    onLost?.();
    const outcome = await fence.settle(token);
    onOutcome(outcome.state);
    if (outcome.state === "committed") return fromReceipt(receiptIds(outcome.result));
    if (outcome.state === "rolled_back") throw err;
    throw outcomeUnknown(err);
  }
}

/**
 * A receipt's result is the statement's `[id, conversation_id]` pairs, in the order the statement returned them;
 * `[null, null]` is a message of a batch refused for an opt-out.
 */
function receiptIds(result: unknown): (StoredIds | null)[] {
  const pairs = (typeof result === "string" ? JSON.parse(result) : result) as [string | null, string | null][];
  return pairs.map(([id, conversation_id]) => (id === null || conversation_id === null ? null : { id, conversation_id }));
}
