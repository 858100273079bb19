/**
 * An email sender as people write it: a bare address (`noreply@example.com`) or an RFC 5322 name-addr
 * (`Example <noreply@example.com>`, `"Doe, Jane" <jane@example.com>`). Parsed by nodemailer's addressparser, the
 * parser nodemailer itself uses for headers, rather than by a regex: quoting, comments and escaped characters are
 * its business. Only one mailbox is a sender; a list or a group is not.
 */
import addressparser from "nodemailer/lib/addressparser";

export interface Mailbox {
  /** The address alone, as written (case kept). */
  address: string;
  /** The display name, when one was given (unquoted, unescaped). */
  name?: string;
}

/** The one mailbox `raw` names, or null when it names none, several, or a group. */
export function parseMailbox(raw: string): Mailbox | null {
  const text = raw.trim();
  if (text === "" || /[\r\n]/.test(text)) return null;
  let parsed: ReturnType<typeof addressparser>;
  try {
    parsed = addressparser(text);
  } catch {
    return null;
  }
  if (parsed.length !== 1) return null;
  const only = parsed[0]!;
  if ("group" in only) return null;
  const address = only.address.trim();
  if (address === "") return null;
  const name = only.name.trim();
  return name === "" ? { address } : { address, name };
}

/** The address of a sender written either way; the text itself when it does not parse (validation refuses it). */
export const mailboxAddress = (raw: string): string => parseMailbox(raw)?.address ?? raw.trim();
