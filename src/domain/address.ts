// Address rules: how a phone number or an email address is recognised and
// reduced to the one spelling that identifies a participant.

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
  const lowered = raw.trim().toLowerCase();
  const at = lowered.lastIndexOf("@");
  if (at < 0) return lowered;
  const local = lowered.slice(0, at);
  const plus = local.indexOf("+");
  if (plus <= 0) return lowered;
  return local.slice(0, plus) + lowered.slice(at);
}

/**
 * Accepts anything that plausibly reaches a phone: an optional leading `+`,
 * then 3–15 digits once the separators people type are removed. Three digits
 * is the floor so that carrier short codes (`12345`) are valid senders; 15 is
 * the E.164 maximum.
 */
export function isPhoneAddress(raw: string): boolean {
  const trimmed = raw.trim();
  const unsigned = trimmed.startsWith("+") ? trimmed.slice(1) : trimmed;
  return PHONE_DIGITS.test(unsigned.replace(PHONE_SEPARATORS, ""));
}

/**
 * A deliberately small email check: enough to reject typos and obvious
 * garbage (`a@b`, `a@@b.com`, `a b@c.com`) without pretending to implement
 * RFC 5322, which no mail provider accepts in full anyway. Surrounding
 * whitespace is ignored, as normalization trims it.
 */
export function isEmailAddress(raw: string): boolean {
  const trimmed = raw.trim();
  if (/\s/.test(trimmed)) return false;
  const parts = trimmed.split("@");
  if (parts.length !== 2) return false;
  const [local = "", domain = ""] = parts;
  if (local.length === 0 || domain.length === 0) return false;
  const labels = domain.split(".");
  return labels.length >= 2 && labels.every((label) => label.length > 0);
}
