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
  return conversationKeyOf(transport, normalizeAddress(transport, from), normalizeAddress(transport, to));
}

/** The same key from two addresses already normalized for `transport` (the send path normalizes them once). */
export function conversationKeyOf(transport: Transport, x: string, y: string): ConversationKey {
  const [a, b] = compareUtf8(x, y) <= 0 ? [x, y] : [y, x];
  return { key: `${transport}:${a}<->${b}`, participantA: a, participantB: b };
}

const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * UTF-8 byte order. It is code point order, which UTF-16 units keep except where a surrogate (a character
 * above U+FFFF) meets U+E000–U+FFFF: strings without surrogates (every phone number) compare as they are.
 */
function compareUtf8(x: string, y: string): number {
  if (SURROGATE.test(x) || SURROGATE.test(y)) return Buffer.compare(Buffer.from(x, "utf8"), Buffer.from(y, "utf8"));
  return x < y ? -1 : x > y ? 1 : 0;
}
