// Timestamps on the wire: strict RFC 3339 in, RFC 3339 UTC out.

// The shape: YYYY-MM-DD, T or t, HH:MM:SS, an optional fraction of one or more digits, then Z, z or ±HH:MM.
const ZERO = 48; // "0"
const DASH = 45; // "-"
const COLON = 58; // ":"
const DOT = 46; // "."
const PLUS = 43; // "+"
const MINUS = 45; // "-"
const UPPER_T = 84;
const LOWER_T = 116;
const UPPER_Z = 90;
const LOWER_Z = 122;

const isDigit = (code: number) => code >= ZERO && code <= ZERO + 9;

/** The number written by `count` ASCII digits at `from`, or -1 when one of them is not a digit. */
function digitsAt(s: string, from: number, count: number): number {
  let value = 0;
  for (let i = from; i < from + count; i++) {
    const code = s.charCodeAt(i);
    if (!isDigit(code)) return -1;
    value = value * 10 + (code - ZERO);
  }
  return value;
}

/** 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z, the bounds of the years a timestamp may fall in. */
const FIRST_INSTANT = new Date(0).setUTCFullYear(1, 0, 1);
const PAST_LAST_INSTANT = Date.UTC(10000, 0, 1);

/** Days in a month of a proleptic Gregorian year; `month` is 1-based. */
function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return leap ? 29 : 28;
  }
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * Parses a client's timestamp strictly, because `Date.parse` accepts dates
 * without a time or an offset and reads them in the server's local zone,
 * which would silently shift messages. Returns null for anything that is not
 * a full RFC 3339 date-time, or whose instant falls outside the years
 * 0001–9999 in UTC. A leap second (`:60`) is accepted, as the RFC
 * allows, and clamped to `:59` since `Date` cannot represent it. Fractions
 * finer than a millisecond are truncated.
 */
export function parseRfc3339(s: string): Date | null {
  // Read by character codes rather than a regular expression with twelve groups: this runs twice for every send.
  const length = s.length;
  if (length < 20) return null;
  const year = digitsAt(s, 0, 4);
  const month = digitsAt(s, 5, 2);
  const day = digitsAt(s, 8, 2);
  const hour = digitsAt(s, 11, 2);
  const minute = digitsAt(s, 14, 2);
  const second = digitsAt(s, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return null;
  const t = s.charCodeAt(10);
  if (s.charCodeAt(4) !== DASH || s.charCodeAt(7) !== DASH || (t !== UPPER_T && t !== LOWER_T)) return null;
  if (s.charCodeAt(13) !== COLON || s.charCodeAt(16) !== COLON) return null;
  let at = 19;
  let millis = 0;
  if (s.charCodeAt(at) === DOT) {
    const first = ++at;
    while (at < length && isDigit(s.charCodeAt(at))) at++;
    if (at === first) return null;
    // Fractions finer than a millisecond are truncated.
    for (let i = first, scale = 100; i < first + 3 && i < at; i++, scale /= 10) millis += (s.charCodeAt(i) - ZERO) * scale;
  }
  const zone = s.charCodeAt(at);
  let zulu = false;
  let sign = 0;
  let offHours = 0;
  let offMinutes = 0;
  if ((zone === UPPER_Z || zone === LOWER_Z) && at + 1 === length) zulu = true;
  else if ((zone === PLUS || zone === MINUS) && at + 6 === length && s.charCodeAt(at + 3) === COLON) {
    sign = zone === MINUS ? -1 : 1;
    offHours = digitsAt(s, at + 1, 2);
    offMinutes = digitsAt(s, at + 4, 2);
    if (offHours < 0 || offMinutes < 0) return null;
  } else return null;
  if (month < 1 || month > 12) return null;
  if (day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 60) return null;

  let offsetMinutes = 0;
  if (!zulu) {
    if (offHours > 23 || offMinutes > 59) return null;
    offsetMinutes = sign * (offHours * 60 + offMinutes);
  }

  // One Date.UTC and one Date. Date.UTC maps the years 0–99 to 1900–1999, so those go through setUTCFullYear, which does not.
  const local = year >= 100 ? Date.UTC(year, month - 1, day, hour, minute, Math.min(second, 59), millis) : smallYear(year, month, day, hour, minute, second, millis);
  const instant = local - offsetMinutes * 60_000;
  // SPEC §3: years 0001–9999 once the offset is applied. PostgreSQL stores a wider range but its input, and
  // RFC 3339's four-digit year on the way out, do not: `0001-01-01T00:30+01:00` is year 0 in UTC.
  return instant >= FIRST_INSTANT && instant < PAST_LAST_INSTANT ? new Date(instant) : null;
}

function smallYear(year: number, month: number, day: number, hour: number, minute: number, second: number, millis: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date.setUTCHours(hour, minute, Math.min(second, 59), millis);
}

/**
 * Formats a timestamp the one way responses carry it (SPEC §2): UTC with `Z`
 * and millisecond precision, so clients never need to handle offsets.
 */
export function formatTimestamp(d: Date): string {
  return d.toISOString();
}
