import { describe, expect, test } from "bun:test";
import { SEND_AT_SKEW_MS, sendAtProblem } from "../../src/domain/schedule.ts";

const NOW = Date.parse("2026-03-01T12:00:00Z");
const DAY = 86_400_000;

describe("sendAtProblem", () => {
  test.each<[string, number, number, string | null]>([
    ["now", 0, 35, null],
    ["one second ahead", 1000, 35, null],
    ["exactly the skew in the past (sent at once)", -SEND_AT_SKEW_MS, 35, null],
    ["one millisecond past the skew", -SEND_AT_SKEW_MS - 1, 35, "must not be more than 60 s in the past"],
    ["a day in the past", -DAY, 35, "must not be more than 60 s in the past"],
    ["exactly the maximum ahead", 35 * DAY, 35, null],
    ["one millisecond past the maximum", 35 * DAY + 1, 35, "must be at most 35 days ahead"],
    ["a year ahead with a 365-day maximum", 365 * DAY, 365, null],
    ["two days ahead with a 1-day maximum", 2 * DAY, 1, "must be at most 1 day ahead"],
  ])("%s", (_name, offset, maxDays, expected) => {
    expect(sendAtProblem(new Date(NOW + offset), NOW, maxDays)).toBe(expected);
  });
});
