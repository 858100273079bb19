/**
 * What every email adapter (SendGrid, SMTP) sends as sender, subject and content, decided once so the two cannot
 * drift: a message reads the same whichever provider of the chain took it.
 */
import { bodyText, defaultSubject, looksLikeHtml } from "../domain/email-text.ts";
import { type Mailbox, parseMailbox } from "../domain/mailbox.ts";
import type { OutboundMessage } from "./provider.ts";

export { looksLikeHtml };

/** The message's own subject unless it is blank; else the body's text cut to 78 characters, or `(no subject)`. */
export function emailSubject(message: OutboundMessage): string {
  return message.subject?.trim() ? message.subject : defaultSubject(message.body);
}

/** The parts of an email: an HTML body gets a plain-text alternative rendered from it; a plain body is text only. */
export function emailParts(body: string): { text: string; html?: string } {
  return looksLikeHtml(body) ? { text: bodyText(body), html: body } : { text: body };
}

/**
 * The sender on the wire: the message's own `from` (the validated `Name <address>` or bare address), with the
 * display name the provider's `senders` gives that address when the message gave none.
 */
export function emailSender(from: string, nameOf?: (address: string) => string | undefined): Mailbox {
  const mailbox = parseMailbox(from) ?? { address: from.trim() };
  if (mailbox.name !== undefined) return mailbox;
  const name = nameOf?.(mailbox.address);
  return name === undefined ? mailbox : { ...mailbox, name };
}

/** The recipient's address as the caller wrote it, trimmed (a `+tag` is kept: it is part of where mail goes). */
export const emailRecipient = (to: string): string => parseMailbox(to)?.address ?? to.trim();
