/**
 * What every email adapter (SendGrid, SMTP) sends as subject and content type, decided once so the two cannot
 * drift: a message reads the same whichever provider of the chain took it.
 */
import { SUBJECT_LENGTH, snippet } from "../domain/snippet.ts";
import type { OutboundMessage } from "./provider.ts";

/**
 * Whether a body is sent as HTML: after trimming it starts with `<` and contains a closing tag (`</p>`,
 * `</html>`, …). A plain-text body that merely starts with `<` (`<3 see you`) or quotes one tag stays plain.
 */
export function looksLikeHtml(body: string): boolean {
  const trimmed = body.trim();
  return trimmed.startsWith("<") && /<\/[a-z][a-z0-9-]*\s*>/i.test(trimmed);
}

/** The message's own subject unless it is blank; else the body's snippet cut to 78 characters, or `(no subject)`. */
export function emailSubject(message: OutboundMessage, fallback: (message: OutboundMessage) => string = defaultSubject): string {
  return message.subject?.trim() ? message.subject : fallback(message);
}

const defaultSubject = (message: OutboundMessage): string => snippet(message.body, SUBJECT_LENGTH) || "(no subject)";
