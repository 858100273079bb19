// Opt-out keywords: the replies that US carriers and Twilio treat as "stop texting me" and "start again",
// and the pair of numbers an opt-out names.

import { normalizePhone } from "./address";

export type OptOutKeyword = "stop" | "start";

const KEYWORDS: ReadonlyMap<string, OptOutKeyword> = new Map([
  ...["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"].map((word) => [word, "stop"] as const),
  ...["START", "UNSTOP", "YES"].map((word) => [word, "start"] as const),
]);

/** Only ASCII letters can spell a keyword; checked before upper-casing (see `optOutKeyword`). */
const ASCII_WORD = /^[A-Za-z]+$/;

/**
 * "stop" when the whole body is an opt-out keyword, "start" when it is an opt-in keyword, otherwise null.
 *
 * The body is trimmed of whitespace at both ends (`String.prototype.trim`: Unicode spaces such as NBSP and
 * the ideographic space, line breaks and the BOM) and compared without regard to ASCII case. Nothing else is
 * forgiven, so that our list agrees with the carrier's, which acts on the single word alone:
 * - a keyword inside a sentence ("stop please", "please cancel") is not one: it is a reply to read;
 * - punctuation is not stripped ("STOP!", "stop.") for the same reason, and because "Cancel." or "Yes."
 *   is as likely an answer to the conversation as a request about the subscription;
 * - only ASCII letters count: upper-casing first would turn the long s in "ſtop" into "STOP" and the
 *   dotless ı in "quıt" into "QUIT", and fullwidth "ＳＴＯＰ" is not normalised (NFKC) either; such look-alikes
 *   are not what a carrier matches, so they are ordinary messages here too.
 */
export function optOutKeyword(body: string): OptOutKeyword | null {
  const word = body.trim();
  if (!ASCII_WORD.test(word)) return null;
  return KEYWORDS.get(word.toUpperCase()) ?? null;
}

/** What an opt-out names: messages from `from` (our number) to `to` (the person), both normalized. */
export interface OptOutPair {
  from: string;
  to: string;
}

/** The opt-out that would refuse an outbound SMS/MMS from `from` to `to`. */
export function sendPair(from: string, to: string): OptOutPair {
  return { from: normalizePhone(from), to: normalizePhone(to) };
}

/**
 * The opt-out a keyword texted from `from` to `to` sets or clears: the person who wrote it (`from`) stops
 * receiving messages from the number they wrote to (`to`), and from no other of our numbers.
 */
export function replyPair(from: string, to: string): OptOutPair {
  return sendPair(to, from);
}
