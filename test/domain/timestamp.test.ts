import { describe, expect, test } from "bun:test";
import { formatTimestamp, parseRfc3339 } from "../../src/domain/timestamp";

describe("parseRfc3339 accepts", () => {
  test.each([
    ["2024-11-01T14:00:00Z", "2024-11-01T14:00:00.000Z", "UTC with Z"],
    ["2024-11-01t14:00:00z", "2024-11-01T14:00:00.000Z", "lowercase t and z"],
    ["2024-11-01T14:00:00+00:00", "2024-11-01T14:00:00.000Z", "a zero offset"],
    ["2024-11-01T14:00:00-00:00", "2024-11-01T14:00:00.000Z", "the unknown-offset form -00:00"],
    ["2024-11-01T14:00:00+02:00", "2024-11-01T12:00:00.000Z", "a positive offset, moved back to UTC"],
    ["2024-11-01T14:00:00-05:30", "2024-11-01T19:30:00.000Z", "a negative offset with minutes"],
    ["2024-11-01T23:30:00-01:00", "2024-11-02T00:30:00.000Z", "an offset that crosses midnight"],
    ["2024-11-01T14:00:00+23:59", "2024-10-31T14:01:00.000Z", "the largest offset"],
    ["2024-11-01T14:00:00.5Z", "2024-11-01T14:00:00.500Z", "a one-digit fraction"],
    ["2024-11-01T14:00:00.123Z", "2024-11-01T14:00:00.123Z", "millisecond precision"],
    ["2024-11-01T14:00:00.123456789Z", "2024-11-01T14:00:00.123Z", "nanoseconds, truncated to milliseconds"],
    ["2024-11-01T14:00:00.9999Z", "2024-11-01T14:00:00.999Z", "a fraction that truncates rather than rounding into the next second"],
    ["2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000Z", "29 February in a leap year"],
    ["2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000Z", "29 February in a year divisible by 400"],
    ["2024-12-31T23:59:60Z", "2024-12-31T23:59:59.000Z", "a leap second, clamped to :59"],
    ["2016-12-31T23:59:60.5Z", "2016-12-31T23:59:59.500Z", "a leap second with a fraction"],
    ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z", "year 1, not mapped to 1901"],
    ["0099-06-15T12:00:00Z", "0099-06-15T12:00:00.000Z", "a two-digit year, not mapped to 1999"],
    ["9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z", "the last representable instant"],
    ["2024-04-30T00:00:00Z", "2024-04-30T00:00:00.000Z", "the 30th of a 30-day month"],
    ["0000-12-31T23:00:00-01:00", "0001-01-01T00:00:00.000Z", "year 0 written, year 1 once the offset is applied"],
    ["9999-12-31T23:59:59+00:30", "9999-12-31T23:29:59.000Z", "the year 9999 with a positive offset that stays in it"],
  ])("%p (%s)", (input, iso) => {
    expect(parseRfc3339(input)?.toISOString()).toBe(iso);
  });
});

describe("parseRfc3339 rejects", () => {
  test.each([
    ["2024-11-01", "a date without a time"],
    ["2024-11-01T14:00:00", "a date-time without an offset"],
    ["not a date", "free text"],
    ["", "an empty string"],
    ["2024-02-30T00:00:00Z", "30 February"],
    ["2023-02-29T00:00:00Z", "29 February in a common year"],
    ["1900-02-29T00:00:00Z", "29 February in a century that is not a leap year"],
    ["2024-04-31T00:00:00Z", "31 April"],
    ["2024-00-10T00:00:00Z", "month 0"],
    ["2024-13-10T00:00:00Z", "month 13"],
    ["2024-11-00T00:00:00Z", "day 0"],
    ["2024-11-01T24:00:00Z", "hour 24"],
    ["2024-11-01T14:60:00Z", "minute 60"],
    ["2024-11-01T14:00:61Z", "second 61"],
    ["2024-11-01T14:00:00+24:00", "offset hour 24"],
    ["2024-11-01T14:00:00+02:60", "offset minute 60"],
    ["2024-11-01 14:00:00Z", "a space instead of T"],
    ["2024-11-01T14:00Z", "no seconds"],
    ["2024-11-01T14:00:00.Z", "a dot without fraction digits"],
    ["2024-11-01T14:00:00,5Z", "a comma as decimal separator"],
    ["2024-11-01T14:00:00+0200", "an offset without a colon"],
    ["2024-11-01T14:00:00+02", "an offset without minutes"],
    ["2024-11-01T14:00:00 Z", "a space before the offset"],
    [" 2024-11-01T14:00:00Z", "leading whitespace"],
    ["2024-11-01T14:00:00Z ", "trailing whitespace"],
    ["2024-11-01T14:00:00Z\n", "a trailing newline"],
    ["+002024-11-01T14:00:00Z", "an expanded year"],
    ["24-11-01T14:00:00Z", "a two-digit year"],
    ["2024-1-01T14:00:00Z", "a one-digit month"],
    ["2024-11-01T14:00:00UTC", "a zone name"],
    ["1730469600", "a Unix timestamp"],
    ["２０２４-11-01T14:00:00Z", "fullwidth digits"],
    ["0000-06-15T12:00:00Z", "year 0 in UTC (SPEC §3: 0001–9999)"],
    ["0001-01-01T00:30:00+01:00", "year 1 written, year 0 once the offset is applied"],
    ["9999-12-31T23:30:00-01:00", "year 9999 written, year 10000 once the offset is applied"],
    ["2024-11-01T14:00:00ZZ", "two zones"],
    ["2024-11-01T14:00:00+02:000", "an offset with a third minute digit"],
    ["2024-11-01T14:00:00.5", "a fraction without an offset"],
    ["2024-11-01T14:00:00Z\u0000", "a trailing NUL"],
    ["2024-11-01TT14:00:00Z", "two Ts"],
    ["2024-11-01T14:0٣:00Z", "an Arabic-Indic digit"],
  ])("%p (%s)", (input) => {
    expect(parseRfc3339(input)).toBeNull();
  });
});

describe("formatTimestamp", () => {
  test.each([
    [new Date(Date.UTC(2024, 10, 1, 14, 0, 0)), "2024-11-01T14:00:00.000Z", "a whole second with .000"],
    [new Date(Date.UTC(2024, 10, 1, 14, 0, 0, 7)), "2024-11-01T14:00:00.007Z", "zero-padded milliseconds"],
    [new Date(0), "1970-01-01T00:00:00.000Z", "the epoch"],
  ])("%p → %p (%s)", (date, expected) => {
    expect(formatTimestamp(date)).toBe(expected);
  });

  test.each([
    "2024-11-01T14:00:00+02:00",
    "2024-11-01T14:00:00.123456Z",
    "2024-12-31T23:59:60Z",
  ])("round-trips %p through UTC", (input) => {
    const parsed = parseRfc3339(input);
    expect(parsed).not.toBeNull();
    expect(parseRfc3339(formatTimestamp(parsed!))?.getTime()).toBe(parsed!.getTime());
  });
});
