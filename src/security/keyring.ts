import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { KEY_BYTES, KEY_ID, type MasterKey, strictBase64 } from "../domain/master-keys.ts";

export { type MasterKey, masterKeysFromFile, parseMasterKeys } from "../domain/master-keys.ts";

/**
 * The cryptographic core of the credential store (issue 9, "Credentials"): master keys, and the envelope a
 * provider secret is stored in. Pure functions over `node:crypto`; no I/O, no configuration, no database.
 *
 * Master keys come as `id:base64key` entries (`MESSAGING_MASTER_KEYS`, or a file of them). The first key encrypts;
 * every key decrypts, so an operator rotates by putting a new key first, re-encrypting, then dropping the old one.
 * Key bytes are held as `KeyObject`s, which neither `JSON.stringify` nor `console.log` turn back into material.
 *
 * An envelope reads `v1.<keyId>.<nonce>.<ciphertext+tag>` (both base64url): AES-256-GCM with a random 96-bit nonce
 * per value and a 128-bit tag. The associated data binds the envelope version, the key id and the credential's
 * `provider/name/version`, so a ciphertext copied to another row or version, or relabelled with another key id,
 * fails authentication instead of decrypting as something it is not.
 */


/** Which credential a value belongs to; bound into its ciphertext. */
export interface CredentialRef {
  provider: string;
  name: string;
  version: number;
}

export type CredentialFailure =
  | "no_master_key"
  | "invalid_reference"
  | "invalid_value"
  | "malformed_envelope"
  | "unknown_key_id"
  | "authentication_failed";

/**
 * A credential that cannot be encrypted or read. The message names the credential and the reason, never the value,
 * the key or the ciphertext, so it can be logged and shown to an operator as it is.
 */
export class CredentialError extends Error {
  override name = "CredentialError";

  constructor(
    readonly ref: CredentialRef,
    readonly reason: CredentialFailure,
    detail: string,
  ) {
    super(`credential ${describeRef(ref)}: ${detail}`);
  }
}

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const ENVELOPE_VERSION = "v1";
const CIPHER = "aes-256-gcm";

/** A new `id:base64key` entry with 32 random bytes, ready for `MESSAGING_MASTER_KEYS` or a key file. */
export function generateMasterKey(id: string): string {
  if (!KEY_ID.test(id)) throw new RangeError("a master key id must be 1-32 characters of A-Z, a-z, 0-9, _ or -");
  return `${id}:${randomBytes(KEY_BYTES).toString("base64")}`;
}

function describeRef(ref: CredentialRef): string {
  return `${ref.provider}/${ref.name} v${ref.version}`;
}

function checkRef(ref: CredentialRef): void {
  const valid = typeof ref.provider === "string" && ref.provider !== "" && typeof ref.name === "string" && ref.name !== "";
  if (!valid || !Number.isSafeInteger(ref.version) || ref.version < 1) {
    throw new CredentialError(ref, "invalid_reference", "provider and name must be non-empty and version a positive integer");
  }
}

/**
 * The associated data: a JSON array, so no choice of provider or name can make two different credentials' data
 * equal (a separator character could appear inside a name; JSON's quoting cannot be forged that way).
 */
function associatedData(keyId: string, ref: CredentialRef): Buffer {
  return Buffer.from(JSON.stringify(["messaging-credential", ENVELOPE_VERSION, keyId, ref.provider, ref.name, ref.version]), "utf8");
}

/** Encrypts `plaintext` for `ref` under the first (current) master key. */
export function encryptCredential(keys: readonly MasterKey[], ref: CredentialRef, plaintext: string): string {
  checkRef(ref);
  const current = keys[0];
  if (!current) throw new CredentialError(ref, "no_master_key", "no master key to encrypt with");
  // UTF-8 would silently turn a lone surrogate into U+FFFD, and the value read back would not be the one stored.
  if (!plaintext.isWellFormed()) throw new CredentialError(ref, "invalid_value", "the value is not well-formed Unicode");
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv(CIPHER, current.key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData(current.id, ref));
  const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
  return [ENVELOPE_VERSION, current.id, nonce.toString("base64url"), sealed.toString("base64url")].join(".");
}

interface Envelope {
  keyId: string;
  nonce: Buffer;
  sealed: Buffer;
}

/** Splits an envelope, or null when it is not exactly the v1 shape (checked before any key is looked up). */
function parseEnvelope(envelope: string): Envelope | null {
  if (typeof envelope !== "string") return null;
  const parts = envelope.split(".");
  if (parts.length !== 4 || parts[0] !== ENVELOPE_VERSION || !KEY_ID.test(parts[1]!)) return null;
  const nonce = strictBase64(parts[2]!, "url");
  const sealed = strictBase64(parts[3]!, "url");
  if (nonce?.length !== NONCE_BYTES || sealed === null || sealed.length < TAG_BYTES) return null;
  return { keyId: parts[1]!, nonce, sealed };
}

/** Opens a parsed envelope with the key it names; returns the plaintext or throws a `CredentialError`. */
function open(keys: readonly MasterKey[], ref: CredentialRef, envelope: Envelope): string {
  const master = keys.find((k) => k.id === envelope.keyId);
  if (!master) throw new CredentialError(ref, "unknown_key_id", `unknown master key id "${envelope.keyId}"`);
  const decipher = createDecipheriv(CIPHER, master.key, envelope.nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(associatedData(master.id, ref));
  decipher.setAuthTag(envelope.sealed.subarray(-TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(envelope.sealed.subarray(0, -TAG_BYTES)), decipher.final()]).toString("utf8");
  } catch {
    // The library's own message says nothing useful ("unable to authenticate data"); ours says what it means here.
    throw new CredentialError(ref, "authentication_failed", "authentication failed (wrong key, or moved/altered)");
  }
}

function parseOrThrow(ref: CredentialRef, envelope: string): Envelope {
  const parsed = parseEnvelope(envelope);
  if (!parsed) throw new CredentialError(ref, "malformed_envelope", "malformed envelope");
  return parsed;
}

/**
 * The plaintext of `envelope` for `ref`, decrypted with whichever master key it names. Never returns an empty or
 * partial value on failure: an unknown key id, a malformed envelope and a failed authentication each throw a
 * `CredentialError` naming the credential.
 */
export function decryptCredential(keys: readonly MasterKey[], ref: CredentialRef, envelope: string): string {
  checkRef(ref);
  return open(keys, ref, parseOrThrow(ref, envelope));
}

/**
 * `envelope` under the current (first) master key. It is always decrypted first, so a damaged value is reported
 * rather than carried along. When it is already under the current key it is returned unchanged (same nonce, same
 * text), so `creds rotate` can count and write only the values that actually moved: `result !== envelope`.
 */
export function reencrypt(keys: readonly MasterKey[], ref: CredentialRef, envelope: string): string {
  checkRef(ref);
  const parsed = parseOrThrow(ref, envelope);
  const plaintext = open(keys, ref, parsed);
  if (parsed.keyId === keys[0]?.id) return envelope;
  return encryptCredential(keys, ref, plaintext);
}
