import { createPublicKey, type KeyObject, verify } from "node:crypto";

/**
 * SendGrid's Signed Event Webhook: SendGrid signs each event POST with an ECDSA P-256 key of the account and
 * sends `X-Twilio-Email-Event-Webhook-Signature` (the DER signature, base64) and
 * `X-Twilio-Email-Event-Webhook-Timestamp` (unix seconds); the signed bytes are the timestamp header's text
 * followed by the raw body, hashed with SHA-256. The console shows the public verification key as base64 DER
 * (SubjectPublicKeyInfo) without PEM framing, and that is the form the config holds.
 *
 * Replay window: SendGrid documents no tolerance for the timestamp, and it retries a failed POST for up to a day,
 * so a fixed window could refuse its own retries. The check is therefore opt-in (`toleranceSecs`); without it a
 * replayed batch verifies, which is harmless because events are deduplicated by `sg_event_id`.
 */

export const SENDGRID_SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature";
export const SENDGRID_TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp";

/** A DER ECDSA P-256 signature is at most 72 bytes (96 base64 characters); longer is not SendGrid's. */
const SIGNATURE_BASE64 = /^[A-Za-z0-9+/]{8,96}={0,2}$/;
const TIMESTAMP = /^\d{1,12}$/;
/** An SPKI P-256 key is 91 bytes; the bound only keeps a misconfigured value from being parsed at length. */
const MAX_KEY_BASE64_LENGTH = 1024;

/** Parsed keys by their base64 text: the key is configured once and checked on every webhook. */
const keys = new Map<string, KeyObject | null>();
const MAX_CACHED_KEYS = 64;

/** The P-256 public key a base64 DER SPKI text encodes, or null for anything else (another curve, RSA, garbage). */
function verificationKey(base64Der: string): KeyObject | null {
  const cached = keys.get(base64Der);
  if (cached !== undefined) return cached;
  let key: KeyObject | null = null;
  const trimmed = base64Der.trim();
  if (trimmed.length > 0 && trimmed.length <= MAX_KEY_BASE64_LENGTH) {
    try {
      const parsed = createPublicKey({ key: Buffer.from(trimmed, "base64"), format: "der", type: "spki" });
      if (parsed.asymmetricKeyType === "ec" && parsed.asymmetricKeyDetails?.namedCurve === "prime256v1") key = parsed;
    } catch {
      key = null;
    }
  }
  if (keys.size >= MAX_CACHED_KEYS) keys.clear();
  keys.set(base64Der, key);
  return key;
}

/** Whether `publicKeyBase64Der` parses as the P-256 key SendGrid shows; for start-up checks of the config. */
export const isSendGridVerificationKey = (publicKeyBase64Der: string): boolean => verificationKey(publicKeyBase64Der) !== null;

/**
 * Whether SendGrid signed this event POST. Every failure (missing header, malformed base64 or timestamp, a key
 * that is not P-256, a stale timestamp when `toleranceSecs` is given, a mismatch) is `false`: the route answers
 * them alike, so a forger learns nothing from the difference.
 */
export function verifySendGridEvent(
  publicKeyBase64Der: string,
  signatureBase64: string | null,
  timestamp: string | null,
  rawBody: Uint8Array,
  nowSecs: number = Math.floor(Date.now() / 1000),
  toleranceSecs?: number,
): boolean {
  if (signatureBase64 === null || timestamp === null) return false;
  if (!SIGNATURE_BASE64.test(signatureBase64) || !TIMESTAMP.test(timestamp)) return false;
  if (toleranceSecs !== undefined && Math.abs(nowSecs - Number(timestamp)) > toleranceSecs) return false;
  const key = verificationKey(publicKeyBase64Der);
  if (key === null) return false;
  const signed = Buffer.concat([Buffer.from(timestamp, "utf8"), rawBody]);
  try {
    return verify("sha256", signed, { key, dsaEncoding: "der" }, Buffer.from(signatureBase64, "base64"));
  } catch {
    // A signature that is not DER at all makes OpenSSL throw rather than answer false.
    return false;
  }
}
