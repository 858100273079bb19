// Address rules: how a phone number or an email address is recognised and
// reduced to the one spelling that identifies a participant.
import { mailboxAddress, parseMailbox } from "./mailbox.ts";

/** Separators people type inside phone numbers; they carry no identity. */
const PHONE_SEPARATORS = /[\s.\-()]/g;
const PHONE_DIGITS = /^\d{3,15}$/;

/**
 * Reduces a phone address to its digits so that `+1 (201) 555-0100` and
 * `+12015550100` are the same participant. The leading `+` is kept because
 * an international number and a national one with the same digits differ.
 */
export function normalizePhone(raw: string): string {
  const trimmed = raw.trim();
  const digits = trimmed.replace(/\D/g, "");
  return trimmed.startsWith("+") ? `+${digits}` : digits;
}

/**
 * Reduces an email address to the mailbox it reaches: case is not
 * significant in practice and a `+tag` is a sub-address of the same inbox,
 * so `User+Promo@Example.com` and `user@example.com` are one participant.
 * A `+` at the very start of the local part is not a tag (removing it would
 * leave no mailbox), so it is kept.
 */
export function normalizeEmail(raw: string): string {
  // A sender written `Name <address>` is the participant of its address.
  const lowered = (raw.includes("<") ? mailboxAddress(raw) : raw).trim().toLowerCase();
  const at = lowered.lastIndexOf("@");
  if (at < 0) return lowered;
  const local = lowered.slice(0, at);
  const plus = local.indexOf("+");
  if (plus <= 0) return lowered;
  return local.slice(0, plus) + lowered.slice(at);
}

/** RFC 5321 §4.5.3.1: no mail system need accept a longer path or local part. */
export const EMAIL_MAX_LENGTH = 254;
export const EMAIL_LOCAL_PART_MAX_LENGTH = 64;
/**
 * A phone number as people write it: 15 digits, a +, and separators between the groups fit with room to spare.
 * The digits rule alone would admit any number of separators, stored as written.
 */
export const PHONE_MAX_LENGTH = 40;

/**
 * Accepts anything that plausibly reaches a phone: an optional leading `+`,
 * then 3–15 digits once the separators people type are removed. Three digits
 * is the floor so that carrier short codes (`12345`) are valid senders; 15 is
 * the E.164 maximum.
 */
export function isPhoneAddress(raw: string): boolean {
  return phoneAddressProblem(raw) === null;
}

/** Why `raw` is not a phone address, as a sentence for the sender, or null when it is one. */
export function phoneAddressProblem(raw: string): string | null {
  if (raw.length > PHONE_MAX_LENGTH) return `must be at most ${PHONE_MAX_LENGTH} characters`;
  const trimmed = raw.trim();
  const unsigned = trimmed.startsWith("+") ? trimmed.slice(1) : trimmed;
  if (PHONE_DIGITS.test(unsigned.replace(PHONE_SEPARATORS, ""))) return null;
  return "must be a phone number: an optional +, then 3 to 15 digits (spaces, dots, dashes, parentheses allowed)";
}

/**
 * A deliberately small email check: enough to reject typos and obvious
 * garbage (`a@b`, `a@@b.com`, `a b@c.com`) without pretending to implement
 * RFC 5322, which no mail provider accepts in full anyway. Surrounding
 * whitespace is ignored, as normalization trims it; lengths are RFC 5321's,
 * counted in characters as written.
 */
export function isEmailAddress(raw: string): boolean {
  return emailAddressProblem(raw) === null;
}

/** Why `raw` is not an email address, as a sentence for the sender, or null when it is one. */
export function emailAddressProblem(raw: string): string | null {
  if (raw.length > EMAIL_MAX_LENGTH) return `must be at most ${EMAIL_MAX_LENGTH} characters`;
  const trimmed = raw.trim();
  const malformed = "must be an email address with one @, a local part and a domain";
  if (/\s/.test(trimmed)) return malformed;
  const parts = trimmed.split("@");
  if (parts.length !== 2) return malformed;
  const [local = "", domain = ""] = parts;
  if (local.length === 0 || domain.length === 0) return malformed;
  if (local.length > EMAIL_LOCAL_PART_MAX_LENGTH) return `must have a local part (before the @) of at most ${EMAIL_LOCAL_PART_MAX_LENGTH} characters`;
  const labels = domain.split(".");
  return labels.length >= 2 && labels.every((label) => label.length > 0) ? null : malformed;
}

/**
 * Why `raw` is not an email sender, or null when it is one: an address, or an RFC 5322 name-addr
 * (`Example <noreply@example.com>`) whose address passes the same rules. Parsed by a library (domain/mailbox.ts).
 */
export function emailSenderProblem(raw: string): string | null {
  if (raw.length > EMAIL_MAX_LENGTH + 200) return `must be at most ${EMAIL_MAX_LENGTH + 200} characters`;
  if (!raw.includes("<")) return emailAddressProblem(raw);
  const mailbox = parseMailbox(raw);
  if (mailbox === null) return "must be an email address, or a display name and an address (Name <address@example.com>)";
  return emailAddressProblem(mailbox.address);
}
