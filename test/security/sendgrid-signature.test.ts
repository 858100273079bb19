import { describe, expect, test } from "bun:test";
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { isSendGridVerificationKey, verifySendGridEvent } from "../../src/providers/sendgrid/signature.ts";

/**
 * SendGrid's signed event webhook (src/providers/sendgrid/signature.ts), as a list of forgeries tried. The test
 * plays SendGrid: it makes its own P-256 key pair, exports the public half as the console shows it (base64 DER
 * SPKI) and signs `timestamp + body` itself.
 */

const encode = (text: string) => new TextEncoder().encode(text);

function keyPair(curve = "prime256v1") {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: curve });
  return { privateKey, publicBase64: publicKey.export({ format: "der", type: "spki" }).toString("base64") };
}

const sendgrid = keyPair();
const other = keyPair();
const NOW = 1_767_000_000;
const TIMESTAMP = String(NOW - 5);
const BODY = encode('[{"email":"a@example.com","event":"delivered","sg_event_id":"ZGVsaXZlcmVk","sg_message_id":"abc.filter0001"}]');

/** The DER signature (node's default encoding for EC keys), base64, as SendGrid sends it. */
const signed = (privateKey: KeyObject, timestamp: string, body: Uint8Array) =>
  sign("sha256", Buffer.concat([Buffer.from(timestamp), body]), privateKey).toString("base64");

const SIGNATURE = signed(sendgrid.privateKey, TIMESTAMP, BODY);

describe("verifySendGridEvent", () => {
  test("accepts SendGrid's signature over timestamp + raw body", () => {
    expect(verifySendGridEvent(sendgrid.publicBase64, SIGNATURE, TIMESTAMP, BODY, NOW)).toBe(true);
  });

  test("accepts the key with surrounding whitespace, as pasted from the console", () => {
    expect(verifySendGridEvent(`  ${sendgrid.publicBase64}\n`, SIGNATURE, TIMESTAMP, BODY, NOW)).toBe(true);
  });

  test("refuses a signature made with another key", () => {
    expect(verifySendGridEvent(sendgrid.publicBase64, signed(other.privateKey, TIMESTAMP, BODY), TIMESTAMP, BODY, NOW)).toBe(false);
    expect(verifySendGridEvent(other.publicBase64, SIGNATURE, TIMESTAMP, BODY, NOW)).toBe(false);
  });

  test("refuses a modified body, one byte changed or appended", () => {
    const changed = BODY.slice();
    changed[10] = changed[10]! ^ 1;
    expect(verifySendGridEvent(sendgrid.publicBase64, SIGNATURE, TIMESTAMP, changed, NOW)).toBe(false);
    expect(verifySendGridEvent(sendgrid.publicBase64, SIGNATURE, TIMESTAMP, new Uint8Array([...BODY, 0x20]), NOW)).toBe(false);
  });

  test("refuses a modified timestamp", () => {
    expect(verifySendGridEvent(sendgrid.publicBase64, SIGNATURE, String(NOW - 4), BODY, NOW)).toBe(false);
  });

  test("refuses a signature over the body alone or the body then the timestamp", () => {
    const bodyOnly = sign("sha256", BODY, sendgrid.privateKey).toString("base64");
    const reversed = sign("sha256", Buffer.concat([BODY, Buffer.from(TIMESTAMP)]), sendgrid.privateKey).toString("base64");
    expect(verifySendGridEvent(sendgrid.publicBase64, bodyOnly, TIMESTAMP, BODY, NOW)).toBe(false);
    expect(verifySendGridEvent(sendgrid.publicBase64, reversed, TIMESTAMP, BODY, NOW)).toBe(false);
  });

  test.each([
    ["no signature header", null, TIMESTAMP],
    ["no timestamp header", SIGNATURE, null],
    ["an empty signature", "", TIMESTAMP],
    ["an empty timestamp", SIGNATURE, ""],
    ["a signature that is not base64", "!!not-base64!!", TIMESTAMP],
    ["base64 that is not DER", Buffer.alloc(64, 7).toString("base64"), TIMESTAMP],
    ["an oversized signature", Buffer.alloc(200, 1).toString("base64"), TIMESTAMP],
    ["a timestamp that is not a number", SIGNATURE, "yesterday"],
    ["a timestamp with a sign", SIGNATURE, `+${TIMESTAMP}`],
  ] as const)("refuses %s", (_, signature, timestamp) => {
    expect(verifySendGridEvent(sendgrid.publicBase64, signature, timestamp, BODY, NOW)).toBe(false);
  });

  test.each([
    ["garbage", "not a key at all"],
    ["empty", ""],
    ["a P-384 key", keyPair("secp384r1").publicBase64],
    ["an Ed25519 key", generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).toString("base64")],
    ["a PEM instead of DER", "-----BEGIN PUBLIC KEY-----"],
  ])("refuses every signature under a verification key that is %s", (_, key) => {
    expect(verifySendGridEvent(key, SIGNATURE, TIMESTAMP, BODY, NOW)).toBe(false);
    expect(isSendGridVerificationKey(key)).toBe(false);
  });

  test("the configured key is recognised as a P-256 verification key", () => {
    expect(isSendGridVerificationKey(sendgrid.publicBase64)).toBe(true);
  });

  test("without a tolerance, an old timestamp still verifies (SendGrid's retries carry their own)", () => {
    const old = String(NOW - 86_400);
    expect(verifySendGridEvent(sendgrid.publicBase64, signed(sendgrid.privateKey, old, BODY), old, BODY, NOW)).toBe(true);
  });

  test("with a tolerance, a timestamp outside it is refused on either side, inside it accepted", () => {
    const at = (t: number) => verifySendGridEvent(sendgrid.publicBase64, signed(sendgrid.privateKey, String(t), BODY), String(t), BODY, NOW, 300);
    expect(at(NOW - 300)).toBe(true);
    expect(at(NOW + 300)).toBe(true);
    expect(at(NOW - 301)).toBe(false);
    expect(at(NOW + 301)).toBe(false);
  });
});

/** ASN.1 DER of an ECDSA signature from its raw r ‖ s halves: SEQUENCE { INTEGER r, INTEGER s }, minimal, positive. */
function derFromRaw(raw: Uint8Array): Buffer {
  const integer = (half: Uint8Array) => {
    let bytes = Buffer.from(half);
    while (bytes.length > 1 && bytes[0] === 0 && bytes[1]! < 0x80) bytes = bytes.subarray(1);
    if (bytes[0]! >= 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
    return Buffer.concat([Buffer.from([0x02, bytes.length]), bytes]);
  };
  const body = Buffer.concat([integer(raw.subarray(0, 32)), integer(raw.subarray(32))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

describe("verifySendGridEvent against Web Crypto, a second implementation", () => {
  test("signatures made with Web Crypto and encoded to DER by hand verify, twenty in a row", async () => {
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
    const publicBase64 = Buffer.from(await crypto.subtle.exportKey("spki", pair.publicKey)).toString("base64");
    // Twenty signatures make a half with its high bit set (DER needs a leading zero) all but certain.
    for (let i = 0; i < 20; i++) {
      const timestamp = String(NOW - i);
      const raw = new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, Buffer.concat([Buffer.from(timestamp), BODY])));
      expect(verifySendGridEvent(publicBase64, derFromRaw(raw).toString("base64"), timestamp, BODY, NOW)).toBe(true);
      // The raw r ‖ s form (what Web Crypto answers) is not what SendGrid sends, and is refused.
      if (i === 0) expect(verifySendGridEvent(publicBase64, Buffer.from(raw).toString("base64"), timestamp, BODY, NOW)).toBe(false);
    }
  });
});
