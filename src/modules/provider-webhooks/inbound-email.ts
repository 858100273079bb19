/**
 * What an inbound email's header fields say, read the way SendGrid Inbound Parse hands them over: `from` and `to`
 * as they appeared in the message (display names, quotes, several recipients), and `headers` as the original
 * header block, one field per line with continuation lines folded (RFC 5322 §2.2.3). Pure functions, no I/O.
 */

/** The longest Message-ID kept as is; a longer one is hashed by the caller (ids end up in an indexed column). */
export const MESSAGE_ID_MAX = 255;

/**
 * The first mailbox of an address field: the `addr-spec` inside angle brackets when there is one
 * (`"Doe, Jane" <jane@example.com>`), else the first comma-separated entry that holds an `@`. Undefined when the
 * field names no address at all (an empty field, a group with no members).
 */
export function firstMailbox(field: string): string | undefined {
  const bracketed = /<([^<>\s]+@[^<>\s]+)>/.exec(field);
  if (bracketed) return bracketed[1];
  // Without brackets there is no display name, so no quoted comma: a plain list of addresses.
  for (const entry of field.split(",")) {
    const address = entry.trim().replace(/^"(.*)"$/, "$1").trim();
    if (address.includes("@") && !/\s/.test(address)) return address;
  }
  return undefined;
}

/** The header block with folded fields unfolded: each field on one line, CRLF or LF alike. */
function unfold(headers: string): string[] {
  return headers.replace(/\r?\n[ \t]+/g, " ").split(/\r?\n/);
}

/**
 * The value of the message's `Message-ID` field (letter case of the name ignored), trimmed, brackets kept as
 * written; undefined when there is none or it is blank. Only the first occurrence counts, as a mail store would.
 */
export function messageIdOf(headers: string): string | undefined {
  for (const line of unfold(headers)) {
    const match = /^message-id[ \t]*:(.*)$/i.exec(line);
    if (match) {
      const value = match[1]!.trim();
      return value === "" ? undefined : value;
    }
  }
  return undefined;
}
