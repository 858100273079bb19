import { describe, expect, test } from "bun:test";
import type { Transport } from "../../src/domain/channel";
import { conversationKey, conversationKeyOf } from "../../src/domain/conversation-key";

describe("conversationKey", () => {
  test.each<[string, Transport, string, string, string, string, string]>([
    [
      "orders phones ascending",
      "sms", "+12015550100", "+18045550199",
      "sms:+12015550100<->+18045550199", "+12015550100", "+18045550199",
    ],
    [
      "orders phones ascending when the larger one wrote first",
      "sms", "+18045550199", "+12015550100",
      "sms:+12015550100<->+18045550199", "+12015550100", "+18045550199",
    ],
    [
      "normalizes formatted phone numbers",
      "sms", "+1 (804) 555-0199", "+1 201.555.0100",
      "sms:+12015550100<->+18045550199", "+12015550100", "+18045550199",
    ],
    [
      "puts a + number before a bare one (+ is 0x2B, below the digits)",
      "sms", "12015550100", "+12015550100",
      "sms:+12015550100<->12015550100", "+12015550100", "12015550100",
    ],
    [
      "keeps a short code as a participant",
      "sms", "12345", "+12015550100",
      "sms:+12015550100<->12345", "+12015550100", "12345",
    ],
    [
      "lowercases emails and removes the +tag",
      "email", "User+Promo@Example.com", "Bob@Example.com",
      "email:bob@example.com<->user@example.com", "bob@example.com", "user@example.com",
    ],
    [
      "a conversation with oneself has equal participants",
      "email", "Me+a@x.io", "me+b@X.io",
      "email:me@x.io<->me@x.io", "me@x.io", "me@x.io",
    ],
    [
      "orders by UTF-8 bytes, not UTF-16 units (U+FF5A sorts before U+1F600 in bytes only)",
      "email", "\u{1F600}@x.io", "\uFF5A@x.io",
      "email:\uFF5A@x.io<->\u{1F600}@x.io", "\uFF5A@x.io", "\u{1F600}@x.io",
    ],
    [
      "orders a shorter prefix first",
      "email", "ab@x.io", "a@x.io",
      "email:a@x.io<->ab@x.io", "a@x.io", "ab@x.io",
    ],
  ])("%s", (_name, transport, from, to, key, participantA, participantB) => {
    expect(conversationKey(transport, from, to)).toEqual({ key, participantA, participantB });
  });

  test.each<[Transport, string, string]>([
    ["sms", "+1 (201) 555-0100", "+18045550199"],
    ["sms", "12345", "2015550100"],
    ["email", "Alice+x@Example.com", "bob@example.com"],
    ["email", "\u{1F600}@x.io", "\uFF5A@x.io"],
  ])("is the same whoever wrote first: %p %p ↔ %p", (transport, x, y) => {
    expect(conversationKey(transport, x, y)).toEqual(conversationKey(transport, y, x));
  });

  test("the same addresses on different transports are different conversations", () => {
    expect(conversationKey("sms", "a@b.co", "c@d.co").key).not.toBe(conversationKey("email", "a@b.co", "c@d.co").key);
  });

  test("UTF-16 order would disagree with the byte order used for the key", () => {
    // Guards the byte-order test above: if these agreed it would prove nothing.
    expect("\u{1F600}" < "\uFF5A").toBe(true);
  });

  // The order is computed without encoding when neither address holds a surrogate; both ways must agree with
  // the UTF-8 bytes for every pair of characters whose UTF-16 and code point orders could differ.
  test("orders any two addresses by their UTF-8 bytes", () => {
    const chars = ["a", "z", "+", "1", "\u00e9", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uff5a", "\uffff", "\u{10000}", "\u{1f600}", "\u{10ffff}"];
    const words = chars.flatMap((c) => [c, `${c}@x.io`, `a${c}`, `${c}${c}`]);
    for (const x of words) {
      for (const y of words) {
        const bytes = Buffer.compare(Buffer.from(x, "utf8"), Buffer.from(y, "utf8"));
        const [a, b] = bytes <= 0 ? [x, y] : [y, x];
        expect(conversationKeyOf("email", x, y)).toEqual({ key: `email:${a}<->${b}`, participantA: a, participantB: b });
      }
    }
  });

  test("conversationKeyOf of normalized addresses is conversationKey of the raw ones", () => {
    expect(conversationKeyOf("sms", "+18045550199", "+12015550100")).toEqual(conversationKey("sms", "+1 (804) 555-0199", "+1 201.555.0100"));
  });
});
