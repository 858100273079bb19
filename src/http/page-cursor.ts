/**
 * The opaque `cursor` of the list routes: the sort key of the last row a page showed, so the next page starts
 * right after it (`WHERE (key) > (cursor)`, an index range scan) instead of skipping `OFFSET` rows.
 *
 * Format: `base64url(JSON payload) "." base64url(HMAC-SHA256(key, payload))[0..16 bytes]`. The payload is
 * `["c", at, id]` for the conversations list, `["o", at, id]` for the opt-outs list,
 * `["m", conversationId, at, id]` for one conversation's messages or `["s", status, at, id]` for the messages of
 * one status (`GET /api/messages?status=`, which walks by id and carries `at` only as the row's creation time);
 * `at` is the row's timestamp as PostgreSQL renders it at microsecond precision (never through a JS Date, which
 * keeps milliseconds and would skip or repeat rows that share one), `id` the row's id as decimal text.
 *
 * Why a MAC although a forged cursor could only select rows the caller may read anyway: so that "bad or
 * tampered → 400" is a promise rather than "garbage → some page", and so that a client cannot come to depend
 * on the format (it is ours to change). The key is derived from a random secret stored once in
 * `runtime_settings` (see conversations/repository.ts), so every instance on one database accepts the cursors
 * of every other, across restarts. Decoding still validates every field strictly: the MAC proves origin, the
 * checks keep a leaked key from turning into SQL errors.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** Where the next page starts: the last shown row's timestamp (µs text) and id. */
export interface RowKey {
  at: string;
  id: string;
}

/** Which list a cursor walks: all conversations, the messages of one, or the opt-outs. */
export type CursorList =
  | { kind: "conversations" }
  | { kind: "opt-outs" }
  | { kind: "messages"; conversationId: string }
  | { kind: "status"; status: string };

/** The payload's first field, naming the list. */
const TAG = { conversations: "c", "opt-outs": "o", messages: "m", status: "s" } as const;

/** The field that scopes a list to one conversation or one status, when it has one. */
const scopeOf = (list: CursorList): string | undefined =>
  list.kind === "messages" ? list.conversationId : list.kind === "status" ? list.status : undefined;

const MAC_BYTES = 16;
/** Far above any cursor we issue (about 120 characters): a longer one is refused before any work. */
export const CURSOR_MAX_LENGTH = 256;
/** The text `keyText` (conversations/repository.ts, messages/repository.ts) renders: UTC, six fractional digits. */
const AT = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z$/;
/** A bigserial id: positive, at most 19 digits (the range check is below). */
const ID = /^[1-9]\d{0,18}$/;
const BIGINT_MAX = 9_223_372_036_854_775_807n;

const mac = (key: Uint8Array, payload: string) => createHmac("sha256", key).update(payload).digest().subarray(0, MAC_BYTES);

const isId = (value: unknown): value is string => typeof value === "string" && ID.test(value) && BigInt(value) <= BIGINT_MAX;

/** The cursor pointing just past `row` of `list`. */
export function encodeCursor(key: Uint8Array, list: CursorList, row: RowKey): string {
  const scope = scopeOf(list);
  const fields = scope === undefined ? [TAG[list.kind], row.at, row.id] : [TAG[list.kind], scope, row.at, row.id];
  const payload = Buffer.from(JSON.stringify(fields)).toString("base64url");
  return `${payload}.${mac(key, payload).toString("base64url")}`;
}

/**
 * The row key a cursor of `list` carries, or a reason it is refused: malformed, not ours (MAC), or issued for
 * another list (the conversations list, or another conversation's messages).
 */
export function decodeCursor(key: Uint8Array, list: CursorList, cursor: string): RowKey | { refused: string } {
  if (cursor.length > CURSOR_MAX_LENGTH) return { refused: "is too long" };
  const parts = cursor.split(".");
  const [payload, tag] = parts;
  if (parts.length !== 2 || !payload || !tag || !/^[\w-]+$/.test(payload) || !/^[\w-]+$/.test(tag)) return { refused: "is not a cursor" };
  const given = Buffer.from(tag, "base64url");
  // Canonical encoding only: base64url's last character has spare bits, and two spellings of one cursor is one too many.
  const canonical = given.length === MAC_BYTES && given.toString("base64url") === tag;
  if (!canonical || !timingSafeEqual(given, mac(key, payload))) return { refused: "is not a cursor this service issued" };
  const fields = parseFields(Buffer.from(payload, "base64url").toString());
  if (!fields) return { refused: "is not a cursor" };
  if (fields[0] !== TAG[list.kind]) return { refused: `belongs to another list than ${list.kind}` };
  if (list.kind === "messages" && fields[1] !== list.conversationId) return { refused: "belongs to another conversation" };
  if (list.kind === "status" && fields[1] !== list.status) return { refused: "belongs to the list of another status" };
  const [at, id] = fields.slice(-2);
  if (typeof at !== "string" || !AT.test(at) || !isId(id)) return { refused: "is not a cursor" };
  return { at, id };
}

/** The JSON array of a payload, with its length fitting its list kind; undefined for anything else. */
function parseFields(text: string): unknown[] | undefined {
  let fields: unknown;
  try {
    fields = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(fields)) return undefined;
  if ((fields[0] === TAG.conversations || fields[0] === TAG["opt-outs"]) && fields.length === 3) return fields;
  if (fields[0] === TAG.messages && fields.length === 4 && isId(fields[1])) return fields;
  if (fields[0] === TAG.status && fields.length === 4 && typeof fields[1] === "string" && /^[a-z]{1,20}$/.test(fields[1])) return fields;
  return undefined;
}
