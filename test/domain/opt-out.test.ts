import { describe, expect, test } from "bun:test";
import { optOutKeyword, type OptOutKeyword, replyPair, sendPair } from "../../src/domain/opt-out";

describe("optOutKeyword", () => {
  test.each(["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"])("%s opts out", (word) => {
    expect(optOutKeyword(word)).toBe("stop");
  });

  test.each(["START", "UNSTOP", "YES"])("%s opts back in", (word) => {
    expect(optOutKeyword(word)).toBe("start");
  });

  test.each<[string, string, OptOutKeyword | null]>([
    ["lower case", "stop", "stop"],
    ["mixed case", "StOp", "stop"],
    ["mixed case opt-in", "uNsToP", "start"],
    ["spaces around", "  stop  ", "stop"],
    ["tabs and line breaks around", "\t\r\nSTART\r\n", "start"],
    ["NBSP around", "\u00A0Stop\u00A0", "stop"],
    ["ideographic space and em space around", "\u3000quit\u2003", "stop"],
    ["a BOM before", "\uFEFFEND", "stop"],
    ["a keyword in a sentence", "stop please", null],
    ["a keyword after other words", "please cancel", null],
    ["two keywords", "STOP STOP", null],
    ["a space inside the keyword", "OPT OUT", null],
    ["trailing exclamation mark", "STOP!", null],
    ["trailing full stop", "Yes.", null],
    ["quoted", "\"STOP\"", null],
    ["fullwidth letters (not NFKC-normalised)", "ＳＴＯＰ", null],
    ["long s that upper-cases to S", "ſtop", null],
    ["dotless i that upper-cases to I", "quıt", null],
    ["Cyrillic look-alike letters", "\u0405TOP", null],
    ["a zero-width space inside (not whitespace)", "ST\u200BOP", null],
    ["a zero-width space after (not trimmed)", "STOP\u200B", null],
    ["a prefix of a keyword", "STO", null],
    ["a longer word", "STOPPED", null],
    ["HELP is not an opt-out", "HELP", null],
    ["NO is not an opt-out", "no", null],
    ["empty", "", null],
    ["only spaces", "   ", null],
  ])("%s: %j", (_name, body, expected) => {
    expect(optOutKeyword(body)).toBe(expected);
  });
});

describe("the pair an opt-out names", () => {
  test.each([
    ["+12015550100", "+12015550101", { from: "+12015550100", to: "+12015550101" }],
    ["+1 (201) 555-0100", " +1.201.555.0101 ", { from: "+12015550100", to: "+12015550101" }],
    ["12345", "201-555-0101", { from: "12345", to: "2015550101" }],
  ])("a send from %j to %j is checked against %j", (from, to, pair) => {
    expect(sendPair(from, to)).toEqual(pair);
  });

  test("a keyword texted from the person to our number names (our number, the person): the send's pair", () => {
    expect(replyPair("+1 201 555 0101", "+12015550100")).toEqual({ from: "+12015550100", to: "+12015550101" });
    expect(replyPair("+12015550101", "+12015550100")).toEqual(sendPair("+12015550100", "+12015550101"));
  });
});
