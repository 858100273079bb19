/**
 * What an email's body reads as text: for the default subject and for the plain-text part sent beside an HTML body.
 * The HTML is rendered by html-to-text (a maintained HTML-to-text converter: tags dropped, entities decoded, block
 * elements on their own lines, links as their text) rather than by stripping `<…>` with a regex, which leaves
 * entities, scripts and comments behind.
 */
import { compile } from "html-to-text";
import { SUBJECT_LENGTH, snippet } from "./snippet.ts";

/**
 * Whether a body is sent as HTML: after trimming it starts with `<` and contains a closing tag (`</p>`,
 * `</html>`, …). A plain-text body that merely starts with `<` (`<3 see you`) or quotes one tag stays plain.
 */
export function looksLikeHtml(body: string): boolean {
  const trimmed = body.trim();
  return trimmed.startsWith("<") && /<\/[a-z][a-z0-9-]*\s*>/i.test(trimmed);
}

const HTML_OPTIONS = {
  wordwrap: false as const,
  selectors: [
    { selector: "a", options: { ignoreHref: true } },
    { selector: "img", format: "skip" },
    { selector: "h1", options: { uppercase: false } },
    { selector: "h2", options: { uppercase: false } },
    { selector: "h3", options: { uppercase: false } },
    { selector: "h4", options: { uppercase: false } },
    { selector: "h5", options: { uppercase: false } },
    { selector: "h6", options: { uppercase: false } },
  ],
};

/** Compiled once, on first use (compiling the selectors costs more than converting a short body). */
let converter: ((html: string) => string) | undefined;

/** The body as plain text: an HTML body rendered (tags removed, entities decoded), a plain one as it is. */
export function bodyText(body: string): string {
  if (!looksLikeHtml(body)) return body;
  converter ??= compile(HTML_OPTIONS);
  return converter(body);
}

/**
 * The subject of an email sent without one (SPEC §3): the body's text, whitespace collapsed, cut to 78 characters
 * (RFC 5322's recommended line length); `(no subject)` when that leaves nothing.
 */
export function defaultSubject(body: string): string {
  return snippet(bodyText(body), SUBJECT_LENGTH) || "(no subject)";
}
