// Timestamps on the wire: strict RFC 3339 in, RFC 3339 UTC out.

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z, the bounds of the years a timestamp may fall in. */
const FIRST_INSTANT = new Date(0).setUTCFullYear(1, 0, 1);
const PAST_LAST_INSTANT = Date.UTC(10000, 0, 1);

/** Days in a month of a proleptic Gregorian year; `month` is 1-based. */
function daysInMonth(year: number, month: number): number {
  if (month === 2) {
    const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
    return leap ? 29 : 28;
  }
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
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
  const m = RFC3339.exec(s);
  if (!m) return null;
  const [, y, mo, d, h, mi, sec, frac = "", zulu, sign, oh, om] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(sec);
  if (month < 1 || month > 12) return null;
  if (day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 60) return null;

  let offsetMinutes = 0;
  if (!zulu) {
    const offHours = Number(oh);
    const offMinutes = Number(om);
    if (offHours > 23 || offMinutes > 59) return null;
    offsetMinutes = (sign === "-" ? -1 : 1) * (offHours * 60 + offMinutes);
  }

  const millis = Number(frac.slice(0, 3).padEnd(3, "0"));
  // One Date.UTC and one Date: this runs twice for every send (the model's check and the stored row).
  // Date.UTC maps the years 0–99 to 1900–1999, so those go through setUTCFullYear, which does not.
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
