import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import {
  CredentialError,
  decryptCredential,
  encryptCredential,
  generateMasterKey,
  masterKeysFromFile,
  parseMasterKeys,
  reencrypt,
  type CredentialFailure,
  type CredentialRef,
  type MasterKey,
} from "../../src/security/keyring.ts";

/**
 * The keyring's crypto core (src/security/keyring.ts): master key parsing, and AES-256-GCM envelopes bound to their
 * key id and credential. Envelopes are checked against WebCrypto as an independent reader of the format, and every
 * failure is checked for what its message must never contain.
 */

const REF: CredentialRef = { provider: "twilio", name: "auth_token", version: 1 };
const SECRET = "s3cr3t-auth-token-0123456789abcdef";

/** A fresh 32-byte key as standard base64, with its raw bytes. */
function keyText(): { b64: string; bytes: Buffer } {
  const bytes = randomBytes(32);
  return { b64: bytes.toString("base64"), bytes };
}

function keysOf(text: string): MasterKey[] {
  const parsed = parseMasterKeys(text);
  if ("problem" in parsed) throw new Error(`unexpected problem: ${parsed.problem}`);
  return parsed.keys;
}

function problemOf(result: { keys: MasterKey[] } | { problem: string }): string {
  if (!("problem" in result)) throw new Error("expected a problem, got keys");
  return result.problem;
}

/** Runs `fn`, expects a CredentialError for `reason`, and returns it. */
function credentialError(fn: () => unknown, reason: CredentialFailure): CredentialError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(CredentialError);
    expect((error as CredentialError).reason).toBe(reason);
    return error as CredentialError;
  }
  throw new Error(`expected a CredentialError (${reason}), nothing was thrown`);
}

function splitEnvelope(envelope: string): { keyId: string; nonce: Buffer; sealed: Buffer } {
  const [, keyId, nonce, sealed] = envelope.split(".");
  return { keyId: keyId!, nonce: Buffer.from(nonce!, "base64url"), sealed: Buffer.from(sealed!, "base64url") };
}

function joinEnvelope(keyId: string, nonce: Buffer, sealed: Buffer): string {
  return `v1.${keyId}.${nonce.toString("base64url")}.${sealed.toString("base64url")}`;
}

function flipped(bytes: Buffer, index: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[index]! ^= 0x01;
  return copy;
}

describe("parseMasterKeys", () => {
  test("reads entries in order, the first being the one that encrypts", () => {
    const a = keyText();
    const b = keyText();
    const keys = keysOf(`k1:${a.b64},k2:${b.b64}`);
    expect(keys.map((k) => k.id)).toEqual(["k1", "k2"]);
    expect(keys[0]!.key.export().equals(a.bytes)).toBe(true);
    expect(keys[1]!.key.export().equals(b.bytes)).toBe(true);
  });

  test("accepts standard and url base64, padded or not, with spaces around entries", () => {
    const bytes = Buffer.from("fbff".repeat(16), "hex"); // encodes with + and / (standard) or - and _ (url)
    const standard = bytes.toString("base64");
    const url = bytes.toString("base64url");
    expect(standard).toContain("+");
    expect(url).toContain("-");
    const keys = keysOf(` a:${standard} , b:${standard.replace(/=+$/, "")},c:${url}, d:${url}= `);
    expect(keys.map((k) => k.id)).toEqual(["a", "b", "c", "d"]);
    for (const k of keys) expect(k.key.export().equals(bytes)).toBe(true);
  });

  test("accepts ids of 1 to 32 characters of letters, digits, _ and -", () => {
    const id = `A-z_09${"x".repeat(26)}`;
    expect(id).toHaveLength(32);
    expect(keysOf(`${id}:${keyText().b64},k:${keyText().b64}`).map((k) => k.id)).toEqual([id, "k"]);
  });

  const good = keyText().b64;
  const refusals: [string, (key: string) => string, RegExp][] = [
    ["empty text", () => "", /no master keys/],
    ["only spaces", () => "   ", /no master keys/],
    ["a key of 16 bytes", () => `k1:${randomBytes(16).toString("base64")}`, /entry 1 \(id "k1"\).*32 bytes, got 16/],
    ["a key of 33 bytes", () => `k1:${good},k2:${randomBytes(33).toString("base64")}`, /entry 2 \(id "k2"\).*32 bytes, got 33/],
    ["a key of 0 bytes", () => "k1:", /entry 1 \(id "k1"\).*got 0/],
    ["a character outside base64", (key) => `k1:${key.slice(0, 20)}!${key.slice(21)}`, /entry 1 \(id "k1"\).*not valid base64/],
    ["both alphabets mixed", () => `k1:+${"A".repeat(41)}_=`, /entry 1 \(id "k1"\).*not valid base64/],
    ["padding in the middle", (key) => `k1:${key.slice(0, 20)}=${key.slice(21)}`, /not valid base64/],
    ["too much padding", (key) => `k1:${key}=`, /not valid base64/],
    ["spare bits set (not canonical)", (key) => `k1:${key.slice(0, 42)}${key[42] === "B" ? "C" : "B"}=`, /not valid base64/],
    ["a duplicate id", (key) => `k1:${key},k2:${keyText().b64},k1:${keyText().b64}`, /entry 3: the key id "k1" is used twice/],
    ["an id with a space", (key) => `k 1:${key}`, /entry 1: the key id must be/],
    ["an id with a dot", (key) => `k2:${keyText().b64},k.1:${key}`, /entry 2: the key id must be/],
    ["an id with a non-ASCII letter", (key) => `clé:${key}`, /entry 1: the key id must be/],
    ["an id of 33 characters", (key) => `${"k".repeat(33)}:${key}`, /entry 1: the key id must be/],
    ["an empty id", (key) => `:${key}`, /entry 1: the key id must be/],
    ["key and id the wrong way round", (key) => `${key}:k1`, /entry 1: the key id must be/],
    ["an entry without a colon", (key) => `k1:${keyText().b64},${key}`, /entry 2: expected id:base64key/],
    ["a trailing comma", (key) => `k1:${key},`, /entry 2 is empty/],
  ];

  test.each(refusals)("refuses %s, naming the entry without its key", (_, build, message) => {
    const text = build(good);
    const problem = problemOf(parseMasterKeys(text));
    expect(problem).toMatch(message);
    // No key material of any entry: neither the base64 text nor a long piece of it.
    for (const entry of text.split(",")) {
      const material = entry.slice(entry.indexOf(":") + 1).trim();
      if (material.length >= 8) expect(problem).not.toContain(material.slice(0, 8));
      const before = entry.split(":")[0]!;
      if (before.length > 32) expect(problem).not.toContain(before.slice(0, 8));
    }
  });

  test("parsed keys show no material when serialized or logged", () => {
    const { b64, bytes } = keyText();
    const keys = keysOf(`k1:${b64}`);
    for (const shown of [JSON.stringify(keys), Bun.inspect(keys), String(keys[0]!.key)]) {
      expect(shown).not.toContain(b64.slice(0, 12));
      expect(shown).not.toContain(bytes.toString("hex").slice(0, 12));
      expect(shown).not.toContain(bytes.toString("base64url").slice(0, 12));
    }
  });
});

describe("masterKeysFromFile", () => {
  test("reads one entry per line or several per line, skipping blank lines and comments", () => {
    const [a, b, c] = [keyText(), keyText(), keyText()];
    const file = `# master keys, newest first\r\n\nk3:${c.b64}   # added in June\n  \n# retired soon:\nk2:${b.b64}, k1:${a.b64}\n`;
    const parsed = masterKeysFromFile(file);
    if ("problem" in parsed) throw new Error(parsed.problem);
    expect(parsed.keys.map((k) => k.id)).toEqual(["k3", "k2", "k1"]);
    expect(parsed.keys[2]!.key.export().equals(a.bytes)).toBe(true);
  });

  test("names the line (and the entry on it) of a bad key, without the key", () => {
    const bad = randomBytes(31).toString("base64");
    const problem = problemOf(masterKeysFromFile(`# keys\nk1:${keyText().b64}\n\nk2:${keyText().b64},k3:${bad}\n`));
    expect(problem).toMatch(/^line 4 entry 2 \(id "k3"\): the key must be 32 bytes, got 31$/);
    expect(problem).not.toContain(bad);
  });

  test("refuses a repeated id across lines", () => {
    expect(problemOf(masterKeysFromFile(`k1:${keyText().b64}\nk1:${keyText().b64}`))).toBe('line 2: the key id "k1" is used twice');
  });

  test("refuses a file with nothing but comments and blank lines", () => {
    expect(problemOf(masterKeysFromFile("# no keys yet\n\n   \n"))).toBe("no master keys given");
  });
});

describe("generateMasterKey", () => {
  test("makes an entry that parses to a 32-byte key under the id, random each time", () => {
    const first = generateMasterKey("k-2026_06");
    const second = generateMasterKey("k-2026_06");
    expect(first).toMatch(/^k-2026_06:[A-Za-z0-9+/]{43}=$/);
    expect(first).not.toBe(second);
    const [key] = keysOf(first);
    expect(key!.id).toBe("k-2026_06");
    expect(key!.key.symmetricKeySize).toBe(32);
  });

  test("refuses an id the parser would refuse", () => {
    for (const id of ["", "k.1", "x".repeat(33), "k:1"]) expect(() => generateMasterKey(id)).toThrow(RangeError);
  });
});

describe("encryptCredential and decryptCredential", () => {
  const keys = keysOf(`k1:${keyText().b64},k0:${keyText().b64}`);

  test("round-trips a value under the first key, in the documented envelope shape", () => {
    const envelope = encryptCredential(keys, REF, SECRET);
    expect(envelope).toMatch(/^v1\.k1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    expect(envelope).not.toContain(SECRET);
    expect(decryptCredential(keys, REF, envelope)).toBe(SECRET);
  });

  test("is AES-256-GCM with the documented associated data, as WebCrypto reads it", async () => {
    const envelope = encryptCredential(keys, REF, SECRET);
    const { nonce, sealed } = splitEnvelope(envelope);
    const key = await crypto.subtle.importKey("raw", new Uint8Array(keys[0]!.key.export()), "AES-GCM", false, ["decrypt"]);
    const additionalData = new TextEncoder().encode(JSON.stringify(["messaging-credential", "v1", "k1", "twilio", "auth_token", 1]));
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: new Uint8Array(nonce), additionalData, tagLength: 128 }, key, new Uint8Array(sealed));
    expect(new TextDecoder().decode(plain)).toBe(SECRET);
    expect(sealed.length).toBe(Buffer.byteLength(SECRET) + 16);
  });

  test("two encryptions of one value differ in nonce and ciphertext", () => {
    const a = splitEnvelope(encryptCredential(keys, REF, SECRET));
    const b = splitEnvelope(encryptCredential(keys, REF, SECRET));
    expect(a.nonce.length).toBe(12);
    expect(a.nonce.equals(b.nonce)).toBe(false);
    expect(a.sealed.equals(b.sealed)).toBe(false);
  });

  test.each([
    ["unicode", "пароль 🔑 密码 ĉu — \u0000 tab\t"],
    ["64 KiB", "x".repeat(65_536 - 4) + "€"], // 65,536 bytes of UTF-8
    ["empty", ""],
  ])("round-trips a %s value", (_, value) => {
    expect(decryptCredential(keys, REF, encryptCredential(keys, REF, value))).toBe(value);
  });

  test("refuses a value that UTF-8 cannot carry unchanged (a lone surrogate)", () => {
    const error = credentialError(() => encryptCredential(keys, REF, "abc\uD800def"), "invalid_value");
    expect(error.message).toBe("credential twilio/auth_token v1: the value is not well-formed Unicode");
  });

  test("refuses to encrypt without a master key", () => {
    const error = credentialError(() => encryptCredential([], REF, SECRET), "no_master_key");
    expect(error.message).toBe("credential twilio/auth_token v1: no master key to encrypt with");
  });

  test.each([
    ["an empty provider", { provider: "", name: "auth_token", version: 1 }],
    ["an empty name", { provider: "twilio", name: "", version: 1 }],
    ["version 0", { provider: "twilio", name: "auth_token", version: 0 }],
    ["a fractional version", { provider: "twilio", name: "auth_token", version: 1.5 }],
  ])("refuses a reference with %s", (_, ref) => {
    credentialError(() => encryptCredential(keys, ref, SECRET), "invalid_reference");
    credentialError(() => decryptCredential(keys, ref, encryptCredential(keys, REF, SECRET)), "invalid_reference");
  });
});

describe("a tampered, moved or unreadable envelope is a CredentialError naming the credential", () => {
  const k1 = keyText();
  const k0 = keyText();
  const keys = keysOf(`k1:${k1.b64},k0:${k0.b64}`);
  const envelope = encryptCredential(keys, REF, SECRET);
  const { nonce, sealed } = splitEnvelope(envelope);
  const authFailed = "credential twilio/auth_token v1: authentication failed (wrong key, or moved/altered)";

  /** Nothing secret in a message: the value, either key (as base64 or hex), the ciphertext, the nonce. */
  function expectNoSecrets(message: string): void {
    for (const secret of [SECRET, k1.b64, k0.b64, k1.bytes.toString("hex"), sealed.toString("base64url"), nonce.toString("base64url")]) {
      expect(message).not.toContain(secret.slice(0, 10));
    }
  }

  const altered: [string, () => string][] = [
    ["a flipped byte in the ciphertext", () => joinEnvelope("k1", nonce, flipped(sealed, 0))],
    ["a flipped byte in the tag", () => joinEnvelope("k1", nonce, flipped(sealed, sealed.length - 1))],
    ["a flipped byte in the nonce", () => joinEnvelope("k1", flipped(nonce, 5), sealed)],
    ["the key id changed to another known key", () => joinEnvelope("k0", nonce, sealed)],
  ];

  test.each(altered)("%s fails authentication", (_, build) => {
    const error = credentialError(() => decryptCredential(keys, REF, build()), "authentication_failed");
    expect(error.message).toBe(authFailed);
    expect(error.ref).toEqual(REF);
    expectNoSecrets(error.message);
  });

  test.each([
    ["another provider", { ...REF, provider: "sendgrid" }, "sendgrid/auth_token v1"],
    ["another name", { ...REF, name: "api_key_secret" }, "twilio/api_key_secret v1"],
    ["another version", { ...REF, version: 2 }, "twilio/auth_token v2"],
  ])("an envelope moved to %s fails authentication", (_, ref, named) => {
    const error = credentialError(() => decryptCredential(keys, ref, envelope), "authentication_failed");
    expect(error.message).toBe(`credential ${named}: authentication failed (wrong key, or moved/altered)`);
    expectNoSecrets(error.message);
  });

  test("a provider/name split differently does not share associated data", () => {
    const a = { provider: "a/b", name: "c", version: 1 };
    const b = { provider: "a", name: "b/c", version: 1 };
    credentialError(() => decryptCredential(keys, b, encryptCredential(keys, a, SECRET)), "authentication_failed");
  });

  test("a wrong key under the same id fails authentication", () => {
    const impostor = keysOf(`k1:${keyText().b64}`);
    const error = credentialError(() => decryptCredential(impostor, REF, envelope), "authentication_failed");
    expect(error.message).toBe(authFailed);
    expectNoSecrets(error.message);
  });

  test("an unknown key id is named", () => {
    const error = credentialError(() => decryptCredential(keysOf(`k2:${keyText().b64}`), REF, envelope), "unknown_key_id");
    expect(error.message).toBe('credential twilio/auth_token v1: unknown master key id "k1"');
    expectNoSecrets(error.message);
  });

  test.each([
    ["an empty string", () => ""],
    ["the value itself (never encrypted)", () => SECRET],
    ["another envelope version", () => envelope.replace(/^v1\./, "v2.")],
    ["a missing part", () => envelope.split(".").slice(0, 3).join(".")],
    ["an extra part", () => `${envelope}.AAAA`],
    ["an invalid key id", () => joinEnvelope("k 1", nonce, sealed)],
    ["a standard-base64 character", () => `${envelope.slice(0, -1)}+`],
    ["a short nonce", () => joinEnvelope("k1", nonce.subarray(0, 11), sealed)],
    ["a long nonce", () => joinEnvelope("k1", Buffer.concat([nonce, Buffer.of(0)]), sealed)],
    ["a body shorter than a tag", () => joinEnvelope("k1", nonce, sealed.subarray(0, 15))],
  ])("%s is a malformed envelope", (_, build) => {
    const error = credentialError(() => decryptCredential(keys, REF, build()), "malformed_envelope");
    expect(error.message).toBe("credential twilio/auth_token v1: malformed envelope");
    expectNoSecrets(error.message);
  });

  test("a tag truncated to 15 bytes with a body is not accepted as a shorter tag", () => {
    const truncated = joinEnvelope("k1", nonce, sealed.subarray(0, sealed.length - 1));
    credentialError(() => decryptCredential(keys, REF, truncated), "authentication_failed");
  });
});

describe("rotation", () => {
  const k1 = keyText().b64;
  const k2 = keyText().b64;

  test("a value under k1 is read with k2 first, moved under k2 by reencrypt, then read with k2 alone", () => {
    const old = encryptCredential(keysOf(`k1:${k1}`), REF, SECRET);
    const both = keysOf(`k2:${k2},k1:${k1}`);
    expect(decryptCredential(both, REF, old)).toBe(SECRET);

    const moved = reencrypt(both, REF, old);
    expect(moved.startsWith("v1.k2.")).toBe(true);
    expect(decryptCredential(keysOf(`k2:${k2}`), REF, moved)).toBe(SECRET);
    credentialError(() => decryptCredential(keysOf(`k2:${k2}`), REF, old), "unknown_key_id");
  });

  test("reencrypt returns an envelope already under the current key unchanged", () => {
    const keys = keysOf(`k2:${k2},k1:${k1}`);
    const current = encryptCredential(keys, REF, SECRET);
    expect(reencrypt(keys, REF, current)).toBe(current);
  });

  test("reencrypt checks even a current envelope, and refuses a damaged or moved one", () => {
    const keys = keysOf(`k2:${k2},k1:${k1}`);
    const current = encryptCredential(keys, REF, SECRET);
    const { keyId, nonce, sealed } = splitEnvelope(current);
    credentialError(() => reencrypt(keys, REF, joinEnvelope(keyId, nonce, flipped(sealed, 3))), "authentication_failed");
    credentialError(() => reencrypt(keys, { ...REF, version: 2 }, current), "authentication_failed");
    credentialError(() => reencrypt(keys, REF, "v1.k2.nope"), "malformed_envelope");
    credentialError(() => reencrypt(keysOf(`k3:${keyText().b64}`), REF, current), "unknown_key_id");
  });

  test("reencrypt keeps the binding to the credential", () => {
    const both = keysOf(`k2:${k2},k1:${k1}`);
    const moved = reencrypt(both, REF, encryptCredential(keysOf(`k1:${k1}`), REF, SECRET));
    credentialError(() => decryptCredential(both, { ...REF, name: "other" }, moved), "authentication_failed");
  });
});
