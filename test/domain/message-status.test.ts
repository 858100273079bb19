import { describe, expect, test } from "bun:test";
import { canTransition, isCancelable, isTerminalStatus, MESSAGE_STATUSES, type MessageStatus } from "../../src/domain/message-status";

/** Every allowed move; any pair not listed here must be refused. */
const ALLOWED: ReadonlyArray<[MessageStatus, MessageStatus, string]> = [
  ["scheduled", "queued", "its send_at came: it joins the delivery queue"],
  ["scheduled", "failed", "its recipient opted out before send_at"],
  ["scheduled", "canceled", "the client took it back before send_at"],
  ["queued", "canceled", "the client took it back before a worker claimed it"],
  ["queued", "sending", "the engine picks the message up"],
  ["queued", "sent", "a provider report overtakes the sending mark"],
  ["queued", "delivered", "a delivery receipt overtakes every earlier mark"],
  ["queued", "failed", "the message fails before it is sent"],
  ["queued", "undelivered", "a carrier receipt overtakes every earlier mark"],
  ["sending", "sent", "the provider accepts the message"],
  ["sending", "delivered", "a delivery receipt overtakes the sent mark"],
  ["sending", "failed", "the provider rejects the message"],
  ["sending", "undelivered", "a carrier receipt overtakes the sent mark"],
  ["sent", "delivered", "the carrier confirms delivery"],
  ["sent", "failed", "the provider reports a failure after accepting"],
  ["sent", "undelivered", "the carrier could not deliver"],
];

const allowedKey = new Set(ALLOWED.map(([from, to]) => `${from}->${to}`));
const ALL_PAIRS = MESSAGE_STATUSES.flatMap((from) => MESSAGE_STATUSES.map((to) => [from, to] as const));
const REFUSED = ALL_PAIRS.filter(([from, to]) => !allowedKey.has(`${from}->${to}`));

describe("canTransition", () => {
  test.each(ALLOWED)("allows %p → %p (%s)", (from, to) => {
    expect(canTransition(from, to)).toBe(true);
  });

  test.each(REFUSED)("refuses %p → %p", (from, to) => {
    expect(canTransition(from, to)).toBe(false);
  });

  test.each(MESSAGE_STATUSES.map((s) => [s] as const))("treats a repeated %p report as no change", (status) => {
    expect(canTransition(status, status)).toBe(false);
  });

  test.each<[MessageStatus, MessageStatus]>([
    ["sent", "queued"],
    ["sent", "sending"],
    ["delivered", "sent"],
    ["sending", "queued"],
    ["queued", "scheduled"],
    ["canceled", "queued"],
    ["canceled", "scheduled"],
    ["sending", "canceled"],
  ])("never moves backwards: %p → %p", (from, to) => {
    expect(canTransition(from, to)).toBe(false);
  });

  test.each(MESSAGE_STATUSES.filter((s) => s !== "received").map((s) => [s] as const))(
    "never turns outbound %p into inbound received",
    (from) => {
      expect(canTransition(from, "received")).toBe(false);
    },
  );

  test("the table covers every pair of statuses", () => {
    expect(ALLOWED.length + REFUSED.length).toBe(MESSAGE_STATUSES.length ** 2);
  });
});

describe("isTerminalStatus", () => {
  test.each<[MessageStatus, boolean]>([
    ["queued", false],
    ["sending", false],
    ["sent", false],
    ["delivered", true],
    ["failed", true],
    ["undelivered", true],
    ["received", true],
    ["scheduled", false],
    ["canceled", true],
  ])("%p terminal: %p", (status, terminal) => {
    expect(isTerminalStatus(status)).toBe(terminal);
  });
});

describe("isCancelable", () => {
  test.each<[MessageStatus, boolean]>(MESSAGE_STATUSES.map((s) => [s, s === "scheduled" || s === "queued"]))(
    "%p cancelable: %p (only before a worker claims it)",
    (status, cancelable) => {
      expect(isCancelable(status)).toBe(cancelable);
    },
  );
});
