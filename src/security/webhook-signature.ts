import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * The built-in webhook signature of SPEC §8: `X-Messaging-Signature: t=<unix seconds>,v1=<hex>`, where the hex is
 * HMAC-SHA256(secret, `${t}.` followed by the raw body bytes). Signing the timestamp with the body makes a captured
 * request useless once it is older than the tolerance; signing the bytes (not a parsed value) means a body
 * re-serialised by anyone in between no longer verifies. Pure functions: the caller supplies the clock.
 */

export const SIGNATURE_HEADER = "x-messaging-signature";

/** Longest header we look at: a sender signing with a handful of secrets needs a few hundred characters. */
export const MAX_SIGNATURE_HEADER_LENGTH = 4096;

/** Most `v1=` values one header may carry (a sender mid-rotation signs with two or three). */
export const MAX_SIGNATURES = 10;

/** Why a signature was refused: for logs and metrics only, never for the client (it would guide a forger). */
export type SignatureFailure = "missing" | "malformed" | "stale" | "mismatch";

export type SignatureVerdict = { ok: true } | { ok: false; reason: SignatureFailure };

export interface ParsedSignature {
  timestamp: number;
  /** Each `v1=` value as the 32 bytes it encodes. */
  signatures: Buffer[];
}

const TIMESTAMP = /^\d{1,15}$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/**
 * Reads a signature header: exactly one `t=` of decimal digits and one to MAX_SIGNATURES `v1=` values of 64 hex
 * digits, comma-separated, in any order; items of other schemes (`v0=`) are ignored so senders can add newer
 * ones. Anything else (empty, oversized, a `v1` that is not a SHA-256 in hex) is malformed. Shapes are checked
 * before any secret is involved, so refusing them says nothing about the secret.
 */
export function parseSignatureHeader(header: string | null): ParsedSignature | SignatureFailure {
  if (header === null) return "missing";
  if (header.length > MAX_SIGNATURE_HEADER_LENGTH) return "malformed";
  let timestamp: number | undefined;
  const signatures: Buffer[] = [];
  for (const item of header.split(",")) {
    const equals = item.indexOf("=");
    if (equals === -1) return "malformed";
    const scheme = item.slice(0, equals).trim();
    const value = item.slice(equals + 1).trim();
    if (scheme === "t") {
      if (timestamp !== undefined || !TIMESTAMP.test(value)) return "malformed";
      timestamp = Number(value);
    } else if (scheme === "v1") {
      if (!SHA256_HEX.test(value) || signatures.length === MAX_SIGNATURES) return "malformed";
      signatures.push(Buffer.from(value, "hex"));
    }
  }
  if (timestamp === undefined || signatures.length === 0) return "malformed";
  return { timestamp, signatures };
}

/** The header-only part of verification, usable before the body has arrived: shape and freshness. */
export function signatureHeaderProblem(header: string | null, nowSecs: number, toleranceSecs: number): SignatureFailure | null {
  const parsed = parseSignatureHeader(header);
  if (typeof parsed === "string") return parsed;
  return isFresh(parsed.timestamp, nowSecs, toleranceSecs) ? null : "stale";
}

/** A timestamp too far in the future is refused like an old one: it would otherwise stay replayable for longer. */
const isFresh = (timestamp: number, nowSecs: number, toleranceSecs: number) => Math.abs(nowSecs - timestamp) <= toleranceSecs;

function hmac(secret: string, timestamp: number, body: Uint8Array): Buffer {
  return createHmac("sha256", secret).update(`${timestamp}.`).update(body).digest();
}

/** The header value a sender attaches: `t=<t>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`. */
export function signWebhook(secret: string, body: Uint8Array, t: number): string {
  return `t=${t},v1=${hmac(secret, t, body).toString("hex")}`;
}

/**
 * Verifies a signature header over the raw body bytes. Any listed secret verifies (a rotation has no gap) and
 * any `v1` value may match (a sender may sign with the old and the new secret). Every candidate is compared in
 * constant time against every secret, with no early exit, so timing does not tell which part matched.
 */
export function verifyWebhookSignature(
  header: string | null,
  body: Uint8Array,
  secrets: readonly string[],
  nowSecs: number,
  toleranceSecs: number,
): SignatureVerdict {
  const parsed = parseSignatureHeader(header);
  if (typeof parsed === "string") return { ok: false, reason: parsed };
  if (!isFresh(parsed.timestamp, nowSecs, toleranceSecs)) return { ok: false, reason: "stale" };
  let matched = false;
  for (const secret of secrets) {
    const expected = hmac(secret, parsed.timestamp, body);
    for (const candidate of parsed.signatures) {
      // Both are 32 bytes: parseSignatureHeader admits only 64 hex digits.
      matched = timingSafeEqual(expected, candidate) || matched;
    }
  }
  return matched ? { ok: true } : { ok: false, reason: "mismatch" };
}
