// SMS encoding and segment counting (3GPP TS 23.038, formerly GSM 03.38): what a carrier bills for a body.
// An SMS carries 140 bytes: 160 seven-bit GSM characters, or 70 UCS-2 code units. A longer body is split
// into parts that each give up 6 bytes to the concatenation header, leaving 153 septets or 67 units.

export type SmsEncoding = "GSM-7" | "UCS-2";

export interface SmsSegments {
  encoding: SmsEncoding;
  /** Parts the carrier sends (and bills). 0 for an empty body: there is no text to send. */
  segments: number;
  /** Septets for GSM-7 (an extension character is 2), UTF-16 code units for UCS-2 (an emoji is 2). */
  units: number;
}

/** The GSM 03.38 default alphabet: one septet each. LF and CR are in it, so CRLF costs 2. */
const GSM_BASIC = new Set(
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà",
);

/** The extension table: each is sent as ESC plus a septet, so it costs 2. `\f` is its form feed. */
const GSM_EXTENSION = new Set("\f^{}\\[~]|€");

const LIMITS: Record<SmsEncoding, { single: number; part: number }> = {
  "GSM-7": { single: 160, part: 153 },
  "UCS-2": { single: 70, part: 67 },
};

/**
 * GSM-7 when every character is in the default alphabet or its extension table, otherwise UCS-2: one
 * character outside GSM-7 (an `á`, a `ç`, an emoji, a curly quote) turns the whole body into UCS-2.
 */
export function smsEncoding(body: string): SmsEncoding {
  for (const char of body) {
    if (!GSM_BASIC.has(char) && !GSM_EXTENSION.has(char)) return "UCS-2";
  }
  return "GSM-7";
}

/**
 * The cost of each character in the units of `encoding`, in order. Iterating by code point keeps a
 * surrogate pair together as one cost of 2, just as an extension character's ESC and septet are one cost
 * of 2: neither may be cut in half at a segment boundary.
 */
function unitCosts(body: string, encoding: SmsEncoding): number[] {
  const costs: number[] = [];
  for (const char of body) {
    costs.push(encoding === "GSM-7" ? (GSM_EXTENSION.has(char) ? 2 : 1) : char.length);
  }
  return costs;
}

/**
 * Encoding, segment count and unit count of an SMS body. A body that fits one SMS (160 septets / 70 units)
 * is one segment; a longer one is packed greedily into parts of 153 septets / 67 units, and a character
 * that would not fit whole in the rest of a part (an extension character's 2 septets, an emoji's surrogate
 * pair) starts the next part, as handsets and carriers split them. That makes some bodies one part longer
 * than `ceil(units / 153)`. Only surrogate pairs are kept whole: a grapheme of several code points (a flag,
 * a ZWJ family emoji) may be split between parts, as carriers do. An empty body is 0 segments in GSM-7.
 *
 * UCS-2 proper cannot hold characters beyond the BMP; carriers send them as UTF-16, so an emoji counts as
 * the 2 code units of its surrogate pair.
 */
export function smsSegments(body: string): SmsSegments {
  const encoding = smsEncoding(body);
  const costs = unitCosts(body, encoding);
  const units = costs.reduce((sum, cost) => sum + cost, 0);
  const { single, part } = LIMITS[encoding];
  if (units === 0) return { encoding, segments: 0, units };
  if (units <= single) return { encoding, segments: 1, units };
  let segments = 1;
  let used = 0;
  for (const cost of costs) {
    if (used + cost > part) {
      segments += 1;
      used = 0;
    }
    used += cost;
  }
  return { encoding, segments, units };
}
