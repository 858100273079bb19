import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { type CursorList, decodeCursor, encodeCursor } from "../../src/http/page-cursor.ts";

const KEY = new Uint8Array(32).fill(7);
const OTHER_KEY = new Uint8Array(32).fill(8);
const CONVERSATIONS: CursorList = { kind: "conversations" };
const MESSAGES_OF_12: CursorList = { kind: "messages", conversationId: "12" };
const ROW = { at: "2026-11-29T17:53:46.123456Z", id: "9007199254740993" };

/** A cursor over any payload, signed with KEY the way encodeCursor signs: what a holder of the key could forge. */
function signedPayload(fields: unknown): string {
  const payload = Buffer.from(JSON.stringify(fields)).toString("base64url");
  return `${payload}.${createHmac("sha256", KEY).update(payload).digest().subarray(0, 16).toString("base64url")}`;
}

describe("page cursors", () => {
  test("round-trip the row key of either list exactly, microseconds and ids past 2^53 included", () => {
    expect(decodeCursor(KEY, CONVERSATIONS, encodeCursor(KEY, CONVERSATIONS, ROW))).toEqual(ROW);
    expect(decodeCursor(KEY, MESSAGES_OF_12, encodeCursor(KEY, MESSAGES_OF_12, ROW))).toEqual(ROW);
  });

  test("of the status list carry their status: round-trip, and refused by another status or another list", () => {
    const scheduled: CursorList = { kind: "status", status: "scheduled" };
    const cursor = encodeCursor(KEY, scheduled, ROW);
    expect(decodeCursor(KEY, scheduled, cursor)).toEqual(ROW);
    expect(decodeCursor(KEY, { kind: "status", status: "queued" }, cursor)).toEqual({ refused: "belongs to the list of another status" });
    expect(decodeCursor(KEY, MESSAGES_OF_12, cursor)).toEqual({ refused: "belongs to another list than messages" });
    expect(decodeCursor(KEY, scheduled, signedPayload(["s", "x".repeat(21), ROW.at, ROW.id]))).toEqual({ refused: "is not a cursor" });
    expect(decodeCursor(KEY, scheduled, signedPayload(["s", 12, ROW.at, ROW.id]))).toEqual({ refused: "is not a cursor" });
  });

  test("are URL-safe without escaping", () => {
    const cursor = encodeCursor(KEY, MESSAGES_OF_12, ROW);
    expect(encodeURIComponent(cursor)).toBe(cursor);
  });

  test("of one list are refused by another, and by another conversation", () => {
    const conversations = encodeCursor(KEY, CONVERSATIONS, ROW);
    const messages = encodeCursor(KEY, MESSAGES_OF_12, ROW);
    expect(decodeCursor(KEY, MESSAGES_OF_12, conversations)).toEqual({ refused: "belongs to another list than messages" });
    expect(decodeCursor(KEY, CONVERSATIONS, messages)).toEqual({ refused: "belongs to another list than conversations" });
    expect(decodeCursor(KEY, { kind: "messages", conversationId: "13" }, messages)).toEqual({ refused: "belongs to another conversation" });
  });

  test("signed with another key, or with any character changed, are refused", () => {
    const cursor = encodeCursor(KEY, CONVERSATIONS, ROW);
    expect(decodeCursor(OTHER_KEY, CONVERSATIONS, cursor)).toEqual({ refused: "is not a cursor this service issued" });
    for (let i = 0; i < cursor.length; i++) {
      if (cursor[i] === ".") continue;
      const changed = cursor.slice(0, i) + (cursor[i] === "A" ? "B" : "A") + cursor.slice(i + 1);
      expect(decodeCursor(KEY, CONVERSATIONS, changed)).toHaveProperty("refused");
    }
  });

  test.each(["", ".", "abc", "a.b.c", "!!!.???", "x".repeat(300), "eyJ9.AAAAAAAAAAAAAAAAAAAAAA", "a b.c"])("garbage %p is refused", (cursor) => {
    expect(decodeCursor(KEY, CONVERSATIONS, cursor)).toHaveProperty("refused");
  });

  test("a truncated cursor is refused", () => {
    const cursor = encodeCursor(KEY, CONVERSATIONS, ROW);
    for (const cut of [1, 5, cursor.length - 1]) expect(decodeCursor(KEY, CONVERSATIONS, cursor.slice(0, cut))).toHaveProperty("refused");
  });

  // What a leaked key could forge still never reaches SQL: every field is checked after the MAC.
  test("the forging helper makes cursors the decoder accepts, so the refusals below are the fields' doing", () => {
    expect(decodeCursor(KEY, CONVERSATIONS, signedPayload(["c", ROW.at, ROW.id]))).toEqual(ROW);
  });

  test.each([
    [["c", "2026-13-01T00:00:00.000000Z", "1"]],
    [["c", "2026-11-29T17:53:46.123Z", "1"]],
    [["c", "2026-11-29 17:53:46.123456+00", "1"]],
    [["c", ROW.at, "0"]],
    [["c", ROW.at, "-1"]],
    [["c", ROW.at, "9223372036854775808"]],
    [["c", ROW.at, 5]],
    [["c", ROW.at]],
    [["c", ROW.at, "1", "extra"]],
    [{ l: "c" }],
    ["c"],
  ])("a well-signed payload %j with a bad field is refused", (fields) => {
    expect(decodeCursor(KEY, CONVERSATIONS, signedPayload(fields))).toHaveProperty("refused");
  });
});
