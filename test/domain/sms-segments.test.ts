import { describe, expect, test } from "bun:test";
import { smsEncoding, smsSegments, type SmsEncoding } from "../../src/domain/sms-segments";

const GRINNING = "\u{1F600}"; // 😀: one code point, a surrogate pair (2 UTF-16 units)
const GREEK_IN_GSM = "ΔΦΓΛΩΠΨΣΘΞ";
const EXTENSION = "^{}[]~|\\€\f";
const a = (n: number) => "a".repeat(n);
const aAcute = (n: number) => "á".repeat(n);

describe("smsSegments", () => {
  test.each<[string, string, SmsEncoding, number, number]>([
    ["an empty body is no segment", "", "GSM-7", 0, 0],
    ["one ASCII letter", "a", "GSM-7", 1, 1],
    ["160 ASCII characters fit one SMS", a(160), "GSM-7", 1, 160],
    ["161 ASCII characters need two parts", a(161), "GSM-7", 2, 161],
    ["153×2 ASCII characters fill two parts exactly", a(306), "GSM-7", 2, 306],
    ["153×2+1 ASCII characters need a third part", a(307), "GSM-7", 3, 307],
    ["a 1,600-character ASCII body is 11 parts", a(1600), "GSM-7", 11, 1600],
    ["€ costs two septets", "€", "GSM-7", 1, 2],
    ["every extension character (^{}[]~|\\€ and form feed) costs two septets", EXTENSION, "GSM-7", 1, 20],
    ["80 € fill one SMS (160 septets)", "€".repeat(80), "GSM-7", 1, 160],
    ["81 € need two parts", "€".repeat(81), "GSM-7", 2, 162],
    ["159 letters and one € cross the single limit", `${a(159)}€`, "GSM-7", 2, 161],
    ["an extension character is not split: it moves to the next part", `${a(152)}€${a(152)}`, "GSM-7", 3, 306],
    ["an extension character that fits whole stays in its part", `${a(151)}€${a(153)}`, "GSM-7", 2, 306],
    ["CRLF is two septets of GSM-7", "a\r\nb", "GSM-7", 1, 4],
    ["Greek capitals of the GSM alphabet stay GSM-7", GREEK_IN_GSM, "GSM-7", 1, 10],
    ["é is in GSM-7", "café", "GSM-7", 1, 4],
    ["other GSM accented letters (è ù ì ò à ä ö ñ ü Ç) stay GSM-7", "èùìòàäöñüÇ", "GSM-7", 1, 10],
    ["£ $ ¥ ¤ § ¡ ¿ @ _ are GSM-7", "£$¥¤§¡¿@_", "GSM-7", 1, 9],
    ["á is not in GSM-7", "á", "UCS-2", 1, 1],
    ["ç (lower case) is not in GSM-7", "ça", "UCS-2", 1, 2],
    ["a Greek capital outside GSM (Alpha, U+0391) is UCS-2", "\u0391", "UCS-2", 1, 1],
    ["lower-case Greek is UCS-2", "αβγ", "UCS-2", 1, 3],
    ["a backtick is not in GSM-7", "`", "UCS-2", 1, 1],
    ["a tab is not in GSM-7", "a\tb", "UCS-2", 1, 3],
    ["a curly apostrophe is not in GSM-7", "it’s", "UCS-2", 1, 4],
    ["one emoji is UCS-2 and two units", GRINNING, "UCS-2", 1, 2],
    ["an emoji turns an otherwise GSM body into UCS-2", `hello ${GRINNING}`, "UCS-2", 1, 8],
    ["70 UCS-2 units fit one SMS", aAcute(70), "UCS-2", 1, 70],
    ["71 UCS-2 units need two parts", aAcute(71), "UCS-2", 2, 71],
    ["67×2 UCS-2 units fill two parts", aAcute(134), "UCS-2", 2, 134],
    ["67×2+1 UCS-2 units need a third part", aAcute(135), "UCS-2", 3, 135],
    ["67×3 UCS-2 units fill three parts", aAcute(201), "UCS-2", 3, 201],
    ["67×3+1 UCS-2 units need a fourth part", aAcute(202), "UCS-2", 4, 202],
    ["35 emoji (70 units) fit one SMS", GRINNING.repeat(35), "UCS-2", 1, 70],
    ["36 emoji split 33 per part, never half an emoji", GRINNING.repeat(36), "UCS-2", 2, 72],
    ["a surrogate pair at a part boundary moves whole to the next part", `${"x".repeat(66)}${GRINNING}${"x".repeat(66)}`, "UCS-2", 3, 134],
    ["a 1,600-character UCS-2 body is 24 parts", aAcute(1600), "UCS-2", 24, 1600],
  ])("%s", (_name, body, encoding, segments, units) => {
    expect(smsSegments(body)).toEqual({ encoding, segments, units });
  });

  test("each Greek capital of the GSM alphabet alone is GSM-7", () => {
    for (const letter of GREEK_IN_GSM) expect(smsEncoding(letter)).toBe("GSM-7");
  });

  test("each extension character alone costs 2 septets in one segment", () => {
    for (const char of EXTENSION) expect(smsSegments(char)).toEqual({ encoding: "GSM-7", segments: 1, units: 2 });
  });
});

describe("smsEncoding", () => {
  test.each<[string, SmsEncoding]>([
    ["", "GSM-7"],
    ["Hello, world!", "GSM-7"],
    ["€10 off {today}", "GSM-7"],
    ["façade", "UCS-2"],
    ["日本", "UCS-2"],
    [GRINNING, "UCS-2"],
  ])("%j is %s", (body, encoding) => {
    expect(smsEncoding(body)).toBe(encoding);
  });
});
