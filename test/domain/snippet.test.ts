import { describe, expect, spyOn, test } from "bun:test";
import { snippet } from "../../src/domain/snippet";

const THUMBS_UP_MEDIUM = "\u{1F44D}\u{1F3FD}"; // 👍🏽 emoji + skin tone modifier
const FAMILY = "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}"; // 👨‍👩‍👧‍👦 ZWJ sequence
const FLAG_NL = "\u{1F1F3}\u{1F1F1}"; // 🇳🇱 regional indicator pair
const RAINBOW_FLAG = "\u{1F3F3}\uFE0F\u200D\u{1F308}"; // 🏳️‍🌈 variation selector + ZWJ
const E_ACUTE = "e\u0301"; // e + combining acute accent
const HANGUL_JAMO = "\u1100\u1161\u11A8"; // 각 as three conjoining jamo
const CRLF = "\r\n";

describe("snippet", () => {
  test.each<[string, string, number, string]>([
    ["returns a short body unchanged", "hello", 64, "hello"],
    ["cuts a long ASCII body to the length", "hello world", 5, "hello"],
    ["trims both ends", "  hello  ", 64, "hello"],
    ["collapses spaces, tabs and newlines into one space", "a \t\n\r\n  b", 64, "a b"],
    ["collapses Unicode spaces (NBSP, em space, ideographic space, line separator)", "a\u00A0\u2003b\u3000c\u2028d", 64, "a b c d"],
    ["trims Unicode spaces at the ends", "\u3000\u00A0hi\u2003\uFEFF", 64, "hi"],
    ["cuts after collapsing, so whitespace runs count once", "a     b     c", 3, "a b"],
    ["may end on a collapsed space when the cut falls there", "ab   cd", 3, "ab "],
    ["returns empty for a whitespace-only body", " \n\t\u00A0 ", 64, ""],
    ["returns empty for an empty body", "", 64, ""],
    ["keeps exactly one grapheme at length 1", "hello", 1, "h"],
    ["keeps an emoji with a skin tone whole", `${THUMBS_UP_MEDIUM}${THUMBS_UP_MEDIUM}`, 1, THUMBS_UP_MEDIUM],
    ["keeps a family ZWJ emoji whole", `${FAMILY}!`, 1, FAMILY],
    ["keeps a flag whole and does not pair across flags", `${FLAG_NL}${FLAG_NL}${FLAG_NL}`, 2, `${FLAG_NL}${FLAG_NL}`],
    ["keeps a rainbow flag (variation selector + ZWJ) whole", `${RAINBOW_FLAG}x`, 1, RAINBOW_FLAG],
    ["keeps a letter with a combining accent whole", `${E_ACUTE}${E_ACUTE}${E_ACUTE}`, 2, `${E_ACUTE}${E_ACUTE}`],
    ["keeps conjoining Hangul jamo whole", `${HANGUL_JAMO}${HANGUL_JAMO}`, 1, HANGUL_JAMO],
    ["counts mixed emoji and text as user-perceived characters", `hi ${FAMILY} ${THUMBS_UP_MEDIUM} there`, 6, `hi ${FAMILY} ${THUMBS_UP_MEDIUM}`],
    ["returns a body of exactly the length in graphemes unchanged", `${FAMILY}${FAMILY}`, 2, `${FAMILY}${FAMILY}`],
    ["treats CRLF inside text as whitespace", `one${CRLF}two`, 64, "one two"],
  ])("%s", (_name, body, length, expected) => {
    expect(snippet(body, length)).toBe(expected);
  });

  test("uses the fast path when the UTF-16 length fits: a long emoji string within length is returned whole", () => {
    const body = FAMILY.repeat(3); // 33 UTF-16 units, 3 graphemes
    expect(body.length).toBe(33);
    expect(snippet(body, 33)).toBe(body);
  });

  test("a body longer in UTF-16 units than the length but within it in graphemes is not cut", () => {
    const body = FAMILY.repeat(3); // 33 units, 3 graphemes
    expect(snippet(body, 3)).toBe(body);
    expect(snippet(body, 4)).toBe(body);
  });

  test.each([1, 64, 4096])("never returns more than %p graphemes", (length) => {
    const body = `${FAMILY} ${E_ACUTE}\tx\n`.repeat(2000);
    const segments = [...new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(snippet(body, length))];
    expect(segments.length).toBe(length);
  });

  test("length 4096 cuts a long ASCII body at exactly 4096 characters", () => {
    expect(snippet("x".repeat(10_000), 4096)).toBe("x".repeat(4096));
  });

  test("length 4096 returns a 4096-character body unchanged", () => {
    const body = "y".repeat(4096);
    expect(snippet(body, 4096)).toBe(body);
  });

  test("a 1 MB body is segmented only up to the length, not to its end", () => {
    // Counted, not timed: segmenting the whole body would cost ~80 ms per call instead of ~7.
    const body = `${THUMBS_UP_MEDIUM} word `.repeat(100_000);
    const original = Intl.Segmenter.prototype.segment;
    let steps = 0;
    const segment = spyOn(Intl.Segmenter.prototype, "segment").mockImplementation(function (this: Intl.Segmenter, input: string) {
      const segments = original.call(this, input);
      return {
        ...segments,
        containing: segments.containing.bind(segments),
        [Symbol.iterator]() {
          const it = segments[Symbol.iterator]();
          return { next: () => (steps++, it.next()), [Symbol.iterator]() { return this; } };
        },
      } as unknown as Intl.Segments;
    });
    try {
      expect([...snippet(body, 64)].length).toBeGreaterThan(0);
      expect(segment).toHaveBeenCalledTimes(1);
      expect(steps).toBe(65);
    } finally {
      segment.mockRestore();
    }
  });

  test.each([0, -1, 1.5, Number.NaN])("rejects a length of %p", (length) => {
    expect(() => snippet("hello", length)).toThrow(RangeError);
  });
});
