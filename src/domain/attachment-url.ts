// Which attachment URLs a message may carry.

/** `scheme://` followed by an authority, not by a further slash the parser would skip. */
const HTTP_SCHEME = /^https?:\/\/[^/\\]/i;

/**
 * Explains why an attachment is unusable, or returns null when it is fine.
 * Providers fetch attachments themselves, so only absolute `http`/`https`
 * URLs with a host are useful. The raw text must start with `scheme://` and
 * a host, and contain no whitespace, because the URL parser would otherwise
 * repair `http:example.com`, `https:///a.jpg` or a stray space into a
 * different URL than the one the client sent. Length is counted in UTF-16
 * units, which for URLs are their characters.
 */
export function attachmentUrlProblem(url: unknown, maxLength: number): string | null {
  if (typeof url !== "string") return "must be a string";
  if (url.length > maxLength) return `must be at most ${maxLength} characters`;
  if (/[\s\u0000-\u001f\u007f]/.test(url)) return "must not contain whitespace or control characters";
  if (!HTTP_SCHEME.test(url)) return "must be an absolute http or https URL";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "must be an absolute http or https URL";
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return "must be an absolute http or https URL";
  }
  if (parsed.hostname.length === 0) return "must be an absolute http or https URL";
  return null;
}
