import { describe, expect, test } from "bun:test";
import {
  MAX_SIGNATURE_HEADER_LENGTH,
  MAX_SIGNATURES,
  parseSignatureHeader,
  signatureHeaderProblem,
  signWebhook,
  verifyWebhookSignature,
} from "../../src/security/webhook-signature.ts";

/**
 * The pure signature functions (src/security/webhook-signature.ts), read as a list of forgeries tried.
 * The reference MAC is computed with Web Crypto, not with the module's own node:crypto code.
 */

const encode = (text: string) => new TextEncoder().encode(text);
const NOW = 1_767_000_000;
const TOLERANCE = 300;
const SECRET = "whsec-current-0123456789";
const OLD_SECRET = "whsec-previous-9876543210";
const BODY = encode('{"from":"+12015550100","to":"+12015550101","type":"sms","body":"hi"}');

async function referenceHex(secret: string, t: number, body: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const message = new Uint8Array([...encode(`${t}.`), ...body]);
  return Buffer.from(await crypto.subtle.sign("HMAC", key, message)).toString("hex");
}

const verify = (header: string | null, body = BODY, secrets = [SECRET], now = NOW) =>
  verifyWebhookSignature(header, body, secrets, now, TOLERANCE);

describe("signWebhook", () => {
  test("is t=<t>,v1=<hex HMAC-SHA256(secret, t + '.' + body)>, matching an independent HMAC", async () => {
    expect(signWebhook(SECRET, BODY, NOW)).toBe(`t=${NOW},v1=${await referenceHex(SECRET, NOW, BODY)}`);
  });

  test("matches a vector computed with openssl (printf '100.{\"a\":1}' | openssl dgst -sha256 -hmac sekret)", () => {
    expect(signWebhook("sekret", encode('{"a":1}'), 100)).toBe("t=100,v1=96b6474d48694ba1f497d5c0b98d400a1e01c27d2f17a98010b428e2a2bda916");
  });

  test("signs bytes, not text: a byte-order mark changes the signature", () => {
    const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...BODY]);
    expect(signWebhook(SECRET, withBom, NOW)).not.toBe(signWebhook(SECRET, BODY, NOW));
  });
});

describe("verifyWebhookSignature accepts", () => {
  test("its own signature within the tolerance, at both edges", () => {
    expect(verify(signWebhook(SECRET, BODY, NOW))).toEqual({ ok: true });
    expect(verify(signWebhook(SECRET, BODY, NOW - TOLERANCE))).toEqual({ ok: true });
    expect(verify(signWebhook(SECRET, BODY, NOW + TOLERANCE))).toEqual({ ok: true });
  });

  test("an empty body signed as such", () => {
    expect(verify(signWebhook(SECRET, new Uint8Array(), NOW), new Uint8Array())).toEqual({ ok: true });
  });

  test("rotation: a header signed with the old or the new secret, while both are listed", () => {
    const both = [SECRET, OLD_SECRET];
    expect(verify(signWebhook(SECRET, BODY, NOW), BODY, both)).toEqual({ ok: true });
    expect(verify(signWebhook(OLD_SECRET, BODY, NOW), BODY, both)).toEqual({ ok: true });
  });

  test("rotation: several v1 values of which one matches, in any position", async () => {
    const good = await referenceHex(SECRET, NOW, BODY);
    const other = await referenceHex("some-unlisted-secret", NOW, BODY);
    expect(verify(`t=${NOW},v1=${other},v1=${good}`)).toEqual({ ok: true });
    expect(verify(`v1=${good},t=${NOW},v1=${other}`)).toEqual({ ok: true });
  });

  test("unknown schemes are ignored, spaces around items are allowed, hex in upper case", async () => {
    const good = await referenceHex(SECRET, NOW, BODY);
    expect(verify(`t=${NOW},v0=whatever,v1=${good},v2=zz`)).toEqual({ ok: true });
    expect(verify(` t=${NOW} , v1=${good.toUpperCase()} `)).toEqual({ ok: true });
  });
});

describe("verifyWebhookSignature refuses", () => {
  test("a missing header (missing)", () => {
    expect(verify(null)).toEqual({ ok: false, reason: "missing" });
  });

  const hex = "ab".repeat(32);
  const malformed: [string, string][] = [
    ["an empty header", ""],
    ["only spaces", "   "],
    ["no t", `v1=${hex}`],
    ["no v1", `t=${NOW}`],
    ["only an unknown scheme", `t=${NOW},v0=${hex}`],
    ["two t values", `t=${NOW},t=${NOW},v1=${hex}`],
    ["a t that is not decimal", `t=0x${NOW.toString(16)},v1=${hex}`],
    ["a negative t", `t=-${NOW},v1=${hex}`],
    ["a fractional t", `t=${NOW}.5,v1=${hex}`],
    ["an empty t", `t=,v1=${hex}`],
    ["an absurdly long t", `t=${"9".repeat(40)},v1=${hex}`],
    ["a non-hex v1", `t=${NOW},v1=${"zz".repeat(32)}`],
    ["an odd-length v1", `t=${NOW},v1=${hex}a`],
    ["a short v1", `t=${NOW},v1=${hex.slice(0, 62)}`],
    ["a long v1", `t=${NOW},v1=${hex}00`],
    ["an empty v1", `t=${NOW},v1=`],
    ["a base64 v1", `t=${NOW},v1=${Buffer.from(hex, "hex").toString("base64")}`],
    ["an item without =", `t=${NOW},v1=${hex},garbage`],
    ["a stray comma", `t=${NOW},,v1=${hex}`],
    ["semicolons instead of commas", `t=${NOW};v1=${hex}`],
    [`more than ${MAX_SIGNATURES} v1 values`, [`t=${NOW}`, ...Array.from({ length: MAX_SIGNATURES + 1 }, () => `v1=${hex}`)].join(",")],
    ["a header past the size bound", `t=${NOW},v1=${hex},v0=${"a".repeat(MAX_SIGNATURE_HEADER_LENGTH)}`],
  ];
  test.each(malformed)("%s (malformed)", (_name, header) => {
    expect(verify(header)).toEqual({ ok: false, reason: "malformed" });
  });

  test(`exactly ${MAX_SIGNATURES} v1 values are still allowed, and one of them may match`, async () => {
    const good = await referenceHex(SECRET, NOW, BODY);
    const values = [...Array.from({ length: MAX_SIGNATURES - 1 }, () => `v1=${hex}`), `v1=${good}`];
    expect(verify([`t=${NOW}`, ...values].join(","))).toEqual({ ok: true });
  });

  test("a timestamp older than the tolerance (stale), even with a correct MAC", () => {
    expect(verify(signWebhook(SECRET, BODY, NOW - TOLERANCE - 1))).toEqual({ ok: false, reason: "stale" });
    expect(verify(signWebhook(SECRET, BODY, 0))).toEqual({ ok: false, reason: "stale" });
  });

  test("a timestamp further in the future than the tolerance (stale), even with a correct MAC", () => {
    expect(verify(signWebhook(SECRET, BODY, NOW + TOLERANCE + 1))).toEqual({ ok: false, reason: "stale" });
  });

  test("a timestamp changed after signing (mismatch): t is inside the MAC", async () => {
    const hexAtNow = await referenceHex(SECRET, NOW, BODY);
    expect(verify(`t=${NOW + 1},v1=${hexAtNow}`)).toEqual({ ok: false, reason: "mismatch" });
  });

  test("a signature made with an unlisted secret (mismatch)", () => {
    expect(verify(signWebhook("attacker-guess", BODY, NOW))).toEqual({ ok: false, reason: "mismatch" });
    expect(verify(signWebhook(OLD_SECRET, BODY, NOW), BODY, [SECRET])).toEqual({ ok: false, reason: "mismatch" });
  });

  test("a re-serialised body: same JSON value, different bytes (mismatch)", () => {
    const header = signWebhook(SECRET, BODY, NOW);
    const value = JSON.parse(new TextDecoder().decode(BODY)) as Record<string, unknown>;
    const spaced = encode(JSON.stringify(value, null, 1));
    const reordered = encode(JSON.stringify(Object.fromEntries(Object.entries(value).reverse())));
    expect(JSON.parse(new TextDecoder().decode(spaced))).toEqual(value);
    expect(verify(header, spaced)).toEqual({ ok: false, reason: "mismatch" });
    expect(verify(header, reordered)).toEqual({ ok: false, reason: "mismatch" });
  });

  test("the body without its byte-order mark when the BOM was signed, and the reverse (mismatch)", () => {
    const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...BODY]);
    expect(verify(signWebhook(SECRET, withBom, NOW), BODY)).toEqual({ ok: false, reason: "mismatch" });
    expect(verify(signWebhook(SECRET, BODY, NOW), withBom)).toEqual({ ok: false, reason: "mismatch" });
  });

  test("one flipped bit in the MAC or in the body (mismatch)", () => {
    const header = signWebhook(SECRET, BODY, NOW);
    const lastHexDigit = header.at(-1)!;
    const flipped = header.slice(0, -1) + (Number.parseInt(lastHexDigit, 16) ^ 1).toString(16);
    expect(verify(flipped)).toEqual({ ok: false, reason: "mismatch" });
    const body = BODY.slice();
    body[body.length - 2]! ^= 1;
    expect(verify(header, body)).toEqual({ ok: false, reason: "mismatch" });
  });

  test("any signature when no secret is listed (mismatch): the function never passes by default", () => {
    expect(verify(signWebhook(SECRET, BODY, NOW), BODY, [])).toEqual({ ok: false, reason: "mismatch" });
  });
});

describe("signatureHeaderProblem (checked before the body arrives)", () => {
  test("names the header's problem without needing the body or a secret", () => {
    expect(signatureHeaderProblem(null, NOW, TOLERANCE)).toBe("missing");
    expect(signatureHeaderProblem(`t=${NOW}`, NOW, TOLERANCE)).toBe("malformed");
    expect(signatureHeaderProblem(`t=${NOW - 301},v1=${"0".repeat(64)}`, NOW, TOLERANCE)).toBe("stale");
    expect(signatureHeaderProblem(`t=${NOW},v1=${"0".repeat(64)}`, NOW, TOLERANCE)).toBeNull();
  });

  test("parseSignatureHeader keeps every v1 value as its 32 bytes", () => {
    const parsed = parseSignatureHeader(`t=7,v1=${"01".repeat(32)},v1=${"ff".repeat(32)}`);
    expect(parsed).toEqual({ timestamp: 7, signatures: [Buffer.alloc(32, 1), Buffer.alloc(32, 0xff)] });
  });
});
