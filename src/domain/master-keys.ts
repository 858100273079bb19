/**
 * Master keys as the configuration reads them (`MESSAGING_MASTER_KEYS`, a key file): `id:base64key` entries, each key
 * 32 bytes. Parsing only (no I/O, no configuration), so the settings table can validate them without importing the
 * credential store; the envelopes that use the keys are security/keyring.ts's.
 */
import { createSecretKey, type KeyObject } from "node:crypto";

/** One master key: its public id (named in envelopes) and its 32 secret bytes. */
export interface MasterKey {
  readonly id: string;
  readonly key: KeyObject;
}

export const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
export const KEY_BYTES = 32;

/** Either alphabet, padded or not, but not mixed: a key pasted from any common tool is read, a typo is not. */
const STANDARD_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_BASE64 = /^[A-Za-z0-9_-]*={0,2}$/;

/**
 * The bytes of `text` when it is canonical base64 (standard or url alphabet, padding optional), else null.
 * Canonical means re-encoding gives the same text back: Node's decoder silently skips stray characters and
 * ignores spare bits, and a key that decodes "mostly" is a key the operator did not mean.
 */
export function strictBase64(text: string, alphabet: "either" | "url"): Buffer | null {
  const url = URL_BASE64.test(text);
  if (!url && (alphabet === "url" || !STANDARD_BASE64.test(text))) return null;
  const bytes = Buffer.from(text, url ? "base64url" : "base64");
  const unpadded = text.replace(/=+$/, "");
  const again = bytes.toString(url ? "base64url" : "base64").replace(/=+$/, "");
  if (again !== unpadded) return null;
  // Padding, when present, must be the right amount for the length.
  if (text.length !== unpadded.length && text.length % 4 !== 0) return null;
  return bytes;
}

/**
 * One `id:base64key` entry, or why it is refused. `where` names the entry by position ("entry 2", "line 3"); the
 * message quotes the id only once it is a valid id: a malformed id may be key material pasted the wrong way round
 * (a 32-byte key is at least 43 characters, longer than any valid id, so a valid id is never a key).
 */
function parseEntry(entry: string, where: string): MasterKey | string {
  const colon = entry.indexOf(":");
  if (colon < 0) return `${where}: expected id:base64key`;
  const id = entry.slice(0, colon).trim();
  if (!KEY_ID.test(id)) return `${where}: the key id must be 1-32 characters of A-Z, a-z, 0-9, _ or -`;
  const bytes = strictBase64(entry.slice(colon + 1).trim(), "either");
  if (bytes === null) return `${where} (id "${id}"): the key is not valid base64`;
  if (bytes.length !== KEY_BYTES) {
    bytes.fill(0);
    return `${where} (id "${id}"): the key must be ${KEY_BYTES} bytes, got ${bytes.length}`;
  }
  const key = createSecretKey(bytes); // copies, so the decoded buffer can be wiped
  bytes.fill(0);
  return { id, key };
}

/** Parses labelled entries in order, refusing the first bad one and any repeated id. */
function parseEntries(entries: readonly { text: string; where: string }[]): { keys: MasterKey[] } | { problem: string } {
  if (entries.length === 0) return { problem: "no master keys given" };
  const keys: MasterKey[] = [];
  for (const { text, where } of entries) {
    const parsed = parseEntry(text, where);
    if (typeof parsed === "string") return { problem: parsed };
    if (keys.some((k) => k.id === parsed.id)) return { problem: `${where}: the key id "${parsed.id}" is used twice` };
    keys.push(parsed);
  }
  return { keys };
}

/**
 * Reads `MESSAGING_MASTER_KEYS`: comma-separated `id:base64key` entries (spaces around them ignored). Ids are unique;
 * each key is exactly 32 bytes of standard or url base64. The first key encrypts, all decrypt. An empty entry is
 * refused rather than skipped: a stray comma in a pasted list usually means a key went missing on the way.
 * Problems name the entry by position and id, never its key.
 */
export function parseMasterKeys(text: string): { keys: MasterKey[] } | { problem: string } {
  if (text.trim() === "") return { problem: "no master keys given" };
  const entries = text.split(",").map((part, i) => ({ text: part.trim(), where: `entry ${i + 1}` }));
  const empty = entries.find((e) => e.text === "");
  if (empty) return { problem: `${empty.where} is empty` };
  return parseEntries(entries);
}

/**
 * Reads a master key file (`MESSAGING_MASTER_KEYS_FILE`): the same entries, one per line or comma-separated, with
 * blank lines and `#` comments ignored (a comment may follow an entry: neither ids nor base64 contain `#`).
 */
export function masterKeysFromFile(contents: string): { keys: MasterKey[] } | { problem: string } {
  const entries = contents.split(/\r?\n/).flatMap((line, i) => {
    const parts = line.replace(/#.*$/, "").split(",").map((p) => p.trim()).filter((p) => p !== "");
    return parts.map((text, j) => ({ text, where: parts.length > 1 ? `line ${i + 1} entry ${j + 1}` : `line ${i + 1}` }));
  });
  return parseEntries(entries);
}
