// The identity of a conversation: the same two participants on the same
// transport, whoever wrote first.

import { normalizeAddress, type Transport } from "./channel";

/** A conversation's stable key and its two participants in key order. */
export interface ConversationKey {
  key: string;
  participantA: string;
  participantB: string;
}

/**
 * Derives the key that makes a reply land in the same conversation as the
 * message it answers. Participants are ordered by their UTF-8 bytes (not
 * JavaScript's UTF-16 `<`) so the key matches what PostgreSQL's `C` collation
 * and the older servers produce for non-ASCII email addresses too.
 */
export function conversationKey(transport: Transport, from: string, to: string): ConversationKey {
  const x = normalizeAddress(transport, from);
  const y = normalizeAddress(transport, to);
  const [a, b] = Buffer.compare(Buffer.from(x, "utf8"), Buffer.from(y, "utf8")) <= 0 ? [x, y] : [y, x];
  return { key: `${transport}:${a}<->${b}`, participantA: a, participantB: b };
}
