import { describe, expect, test } from "bun:test";
import { jsonTextProblem, MAX_JSON_DEPTH } from "../../src/http/json-text.ts";

const nested = (depth: number, open = "[", close = "]") => open.repeat(depth) + close.repeat(depth);

describe("jsonTextProblem: nesting", () => {
  test.each([
    [nested(MAX_JSON_DEPTH), null, "arrays exactly at the bound"],
    [`${'{"a":'.repeat(MAX_JSON_DEPTH)}1${"}".repeat(MAX_JSON_DEPTH)}`, null, "objects exactly at the bound"],
    [JSON.stringify({ body: "[".repeat(10_000) }), null, "brackets inside a string do not nest"],
    [JSON.stringify({ body: `\\"${"{".repeat(100)}` }), null, "an escaped quote does not end the string early"],
    [JSON.stringify({ a: "\\", b: "[[[[" }), null, "an escaped backslash before the closing quote"],
  ])("%#: %s (%s) → no problem", (text, expected) => {
    expect(jsonTextProblem(text)).toBe(expected);
  });

  test.each([
    [nested(MAX_JSON_DEPTH + 1), "arrays one past the bound"],
    [`${'{"a":'.repeat(MAX_JSON_DEPTH + 1)}1${"}".repeat(MAX_JSON_DEPTH + 1)}`, "objects one past the bound"],
    [`[${"{\"a\":[".repeat(20)}`, "unbalanced, deep in the first half"],
    [nested(100_000), "100,000 levels"],
  ])("%#: (%s) is refused naming the bound", (text) => {
    expect(jsonTextProblem(text)).toContain(`deeper than ${MAX_JSON_DEPTH} levels`);
  });
});

describe("jsonTextProblem: surrogates", () => {
  test.each([
    ['"\\ud83d\\ude00"', "an escaped pair (an emoji)"],
    ['"\\uD83D\\uDE00"', "an escaped pair in capitals"],
    ['"😀"', "an emoji written as itself"],
    ['"\\u00e9\\u0041"', "escapes outside the surrogate range"],
    ['"\\\\ud800"', "an escaped backslash followed by text that merely looks like an escape"],
  ])("%s (%s) is fine", (text) => {
    expect(jsonTextProblem(text)).toBeNull();
  });

  test.each([
    ['"\\ud800"', "\\ud800", "a lone high surrogate"],
    ['"\\udc00"', "\\udc00", "a lone low surrogate"],
    ['"a\\ud83d"', "\\ud83d", "a high surrogate at the end of a string"],
    ['"\\ud83d\\u0041"', "\\ud83d", "a high surrogate followed by another escape"],
    ['"\\ude00\\ud83d"', "\\ude00", "a pair in the wrong order"],
    ['{"\\ud800": 1}', "\\ud800", "a lone surrogate in a key"],
  ])("%s is refused, naming %s (%s)", (text, escape) => {
    expect(jsonTextProblem(text)).toContain(`lone UTF-16 surrogate (${escape}`);
  });
});
