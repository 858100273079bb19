import { describe, expect, test } from "bun:test";
import { twilioSignature, twilioSignedString, verifyTwilioSignature } from "../../src/providers/twilio/signature.ts";

/**
 * Twilio's `X-Twilio-Signature` (src/providers/twilio/signature.ts). Two kinds of reference, neither from the module:
 * the worked example published with Twilio's request validation, and MACs computed by the openssl binary.
 */

/**
 * The worked example of Twilio's webhook-security page ("Validating requests"): auth token 12345, this URL with its
 * query string, these five parameters. The stored copy of the page available here did not include the example's
 * text, so the values are as quoted from that page by several independent projects; the openssl check below
 * confirms the expected value independently of our code.
 */
const DOC_TOKEN = "12345";
const DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2";
const DOC_PARAMS: [string, string][] = [
  ["CallSid", "CA1234567890ABCDE"],
  ["Caller", "+12349013030"],
  ["Digits", "1234"],
  ["From", "+12349013030"],
  ["To", "+18005551212"],
];
const DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

/** The same example with the caller number used in Twilio's SDK test suites, and the signature they expect. */
const SDK_PARAMS: Record<string, string> = {
  CallSid: "CA1234567890ABCDE",
  Caller: "+14158675309",
  Digits: "1234",
  From: "+14158675309",
  To: "+18005551212",
};
const SDK_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

/** base64(HMAC-SHA1(key, data)) by the openssl binary: `openssl dgst -sha1 -hmac KEY -binary`. */
async function opensslSignature(key: string, data: string): Promise<string> {
  const child = Bun.spawn(["openssl", "dgst", "-sha1", "-hmac", key, "-binary"], { stdin: new TextEncoder().encode(data), stdout: "pipe" });
  const digest = Buffer.from(await new Response(child.stdout).arrayBuffer());
  expect(await child.exited).toBe(0);
  return digest.toString("base64");
}

const CURRENT = "f3c1e0b2a9d84c7e6b5a4f3e2d1c0b9a";
const PREVIOUS = "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d";
const STATUS_URL = "https://messaging.example.com/api/webhooks/twilio/twilio-main/status";
const STATUS: [string, string][] = [
  ["MessageSid", "SM0123456789abcdef0123456789abcdef"],
  ["MessageStatus", "delivered"],
  ["AccountSid", "AC0123456789abcdef0123456789abcdef"],
  ["To", "+14155550101"],
  ["From", "+14155550100"],
  ["ErrorCode", ""],
];

describe("twilioSignature", () => {
  test("reproduces the worked example of Twilio's webhook-security page", () => {
    expect(twilioSignature(DOC_TOKEN, DOC_URL, DOC_PARAMS)).toBe(DOC_SIGNATURE);
  });

  test("reproduces the vector of Twilio's SDK test suites, given as a record", () => {
    expect(twilioSignature(DOC_TOKEN, DOC_URL, SDK_PARAMS)).toBe(SDK_SIGNATURE);
  });

  test("the published example's signature is what openssl computes over the URL and the sorted name-value pairs", async () => {
    const signed = `${DOC_URL}CallSidCA1234567890ABCDECaller+12349013030Digits1234From+12349013030To+18005551212`;
    expect(twilioSignedString(DOC_URL, DOC_PARAMS)).toBe(signed);
    expect(await opensslSignature(DOC_TOKEN, signed)).toBe(DOC_SIGNATURE);
  });

  test("a status callback's signature matches openssl, empty values and all", async () => {
    const signed = `${STATUS_URL}AccountSidAC0123456789abcdef0123456789abcdefErrorCodeFrom+14155550100MessageSidSM0123456789abcdef0123456789abcdefMessageStatusdeliveredTo+14155550101`;
    expect(twilioSignedString(STATUS_URL, STATUS)).toBe(signed);
    expect(twilioSignature(CURRENT, STATUS_URL, STATUS)).toBe(await opensslSignature(CURRENT, signed));
  });

  test("sorts names case-sensitively (upper case before lower), as Unix sort does", () => {
    expect(twilioSignedString("u", [["b", "1"], ["B", "2"], ["a", "3"]])).toBe("uB2a3b1");
  });

  test("does not depend on the order the parameters arrived in", () => {
    expect(twilioSignature(DOC_TOKEN, DOC_URL, [...DOC_PARAMS].reverse())).toBe(DOC_SIGNATURE);
    expect(twilioSignature(DOC_TOKEN, DOC_URL, Object.fromEntries([...DOC_PARAMS].reverse()))).toBe(DOC_SIGNATURE);
  });

  test("signs every value of a repeated parameter, in sorted order, whichever form they come in", async () => {
    const pairs: [string, string][] = [["MediaUrl", "https://b.example/2.png"], ["Body", "hi"], ["MediaUrl", "https://a.example/1.png"]];
    const signed = "https://h.example/inBodyhiMediaUrlhttps://a.example/1.pngMediaUrlhttps://b.example/2.png";
    expect(twilioSignedString("https://h.example/in", pairs)).toBe(signed);
    const record = { Body: "hi", MediaUrl: ["https://b.example/2.png", "https://a.example/1.png"] };
    expect(twilioSignature(CURRENT, "https://h.example/in", record)).toBe(await opensslSignature(CURRENT, signed));
    expect(twilioSignature(CURRENT, "https://h.example/in", pairs)).toBe(twilioSignature(CURRENT, "https://h.example/in", record));
  });

  test("non-ASCII values are signed as UTF-8", async () => {
    const params: [string, string][] = [["Body", "Grüße €5 😀"]];
    expect(twilioSignature(CURRENT, STATUS_URL, params)).toBe(await opensslSignature(CURRENT, `${STATUS_URL}BodyGrüße €5 😀`));
  });
});

describe("verifyTwilioSignature", () => {
  const signed = twilioSignature(CURRENT, STATUS_URL, STATUS);

  test("accepts the published example", () => {
    expect(verifyTwilioSignature(DOC_SIGNATURE, [DOC_TOKEN], DOC_URL, DOC_PARAMS)).toBe(true);
  });

  test("accepts a signature whatever order the form fields are given in", () => {
    expect(verifyTwilioSignature(signed, [CURRENT], STATUS_URL, [...STATUS].reverse())).toBe(true);
  });

  test("refuses a signature made with another token", () => {
    expect(verifyTwilioSignature(twilioSignature("not-the-token", STATUS_URL, STATUS), [CURRENT], STATUS_URL, STATUS)).toBe(false);
    expect(verifyTwilioSignature(DOC_SIGNATURE, ["54321"], DOC_URL, DOC_PARAMS)).toBe(false);
  });

  test.each([
    ["a changed value", STATUS.map(([n, v]): [string, string] => (n === "MessageStatus" ? [n, "failed"] : [n, v]))],
    ["an added parameter", [...STATUS, ["ErrorMessage", "x"]] as [string, string][]],
    ["a dropped parameter", STATUS.filter(([n]) => n !== "ErrorCode")],
    ["a value moved to another name", STATUS.map(([n, v]): [string, string] => (n === "To" ? ["From", v] : n === "From" ? ["To", v] : [n, v]))],
  ])("refuses %s", (_, params) => {
    expect(verifyTwilioSignature(signed, [CURRENT], STATUS_URL, params)).toBe(false);
  });

  test("refuses the same form posted to another URL, or with another query string", () => {
    expect(verifyTwilioSignature(signed, [CURRENT], STATUS_URL.replace("twilio-main", "twilio-other"), STATUS)).toBe(false);
    expect(verifyTwilioSignature(DOC_SIGNATURE, [DOC_TOKEN], DOC_URL.replace("bar=2", "bar=3"), DOC_PARAMS)).toBe(false);
  });

  test("during a rotation the previous token still verifies, alongside the current one", () => {
    const byPrevious = twilioSignature(PREVIOUS, STATUS_URL, STATUS);
    expect(verifyTwilioSignature(byPrevious, [CURRENT, PREVIOUS], STATUS_URL, STATUS)).toBe(true);
    expect(verifyTwilioSignature(signed, [CURRENT, PREVIOUS], STATUS_URL, STATUS)).toBe(true);
    // Once the overlap ends the caller passes the current token alone, and the old signature stops verifying.
    expect(verifyTwilioSignature(byPrevious, [CURRENT], STATUS_URL, STATUS)).toBe(false);
  });

  test.each([
    ["missing", null],
    ["undefined", undefined],
    ["empty", ""],
    ["one character short", signed.slice(0, -1)],
    ["one character long", `${signed}=`],
    ["the right bytes in hex", Buffer.from(signed, "base64").toString("hex")],
  ])("refuses a header that is %s", (_, header) => {
    expect(verifyTwilioSignature(header, [CURRENT], STATUS_URL, STATUS)).toBe(false);
  });

  test("refuses a header that differs only in base64's spare bits, though it decodes to the same bytes", () => {
    const last = DOC_SIGNATURE.at(-2)!; // 'Q': its two low bits are spare in a 20-byte value
    const twin = `${DOC_SIGNATURE.slice(0, -2)}${String.fromCharCode(last.charCodeAt(0) + 1)}=`;
    expect(Buffer.from(twin, "base64").equals(Buffer.from(DOC_SIGNATURE, "base64"))).toBe(true);
    expect(verifyTwilioSignature(twin, [DOC_TOKEN], DOC_URL, DOC_PARAMS)).toBe(false);
  });

  test("an empty token in the list never verifies a signature made with the empty key", () => {
    const byEmpty = twilioSignature("", STATUS_URL, STATUS);
    expect(verifyTwilioSignature(byEmpty, [""], STATUS_URL, STATUS)).toBe(false);
    expect(verifyTwilioSignature(byEmpty, [], STATUS_URL, STATUS)).toBe(false);
  });
});
