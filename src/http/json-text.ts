/**
 * The deepest nesting of arrays and objects a request body may have. Our bodies nest two levels (an object holding
 * the attachments list); the bound only has to keep recursive work on a hostile body (parse, validate, render)
 * linear in its size.
 */
export const MAX_JSON_DEPTH = 32;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const LETTER_U = 0x75;

const isHighSurrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number) => unit >= 0xdc00 && unit <= 0xdfff;

/** The code unit of a `\uXXXX` escape whose backslash is at `at`, or -1 when there is none. */
function escapedUnit(text: string, at: number): number {
  if (text.charCodeAt(at) !== BACKSLASH || text.charCodeAt(at + 1) !== LETTER_U) return -1;
  const hex = text.slice(at + 2, at + 6);
  return /^[0-9a-fA-F]{4}$/.test(hex) ? Number.parseInt(hex, 16) : -1;
}

/**
 * What a JSON text must not be even when it parses, found in one linear pass before parsing:
 * nested deeper than MAX_JSON_DEPTH, or holding an escaped lone UTF-16 surrogate (`"\ud800"`), which JSON.parse
 * accepts and storage would silently turn into U+FFFD. Unescaped surrogates cannot occur: the text was decoded
 * from UTF-8, which cannot encode them. Returns a sentence for the client, or null. Malformed text is left to
 * the parser to describe.
 */
export function jsonTextProblem(text: string): string | null {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === QUOTE) inString = false;
      else if (c === BACKSLASH) {
        const unit = escapedUnit(text, i);
        if (unit === -1) {
          i += 1; // a two-character escape such as \" or \\
          continue;
        }
        if (isLowSurrogate(unit)) return loneSurrogate(unit, i);
        if (isHighSurrogate(unit)) {
          if (!isLowSurrogate(escapedUnit(text, i + 6))) return loneSurrogate(unit, i);
          i += 6; // the pair's low half is consumed with it
        }
        i += 5;
      }
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      depth += 1;
      if (depth > MAX_JSON_DEPTH) return `request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth -= 1;
  }
  return null;
}

function loneSurrogate(unit: number, at: number): string {
  const escape = `\\u${unit.toString(16).padStart(4, "0")}`;
  return `request body holds a lone UTF-16 surrogate (${escape} at character ${at}); strings must be valid Unicode`;
}
