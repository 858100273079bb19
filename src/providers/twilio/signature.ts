import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Twilio's request signature, `X-Twilio-Signature`, as its webhook-security page describes it: the full URL Twilio
 * requested (scheme, host, path and query string, exactly as configured), followed by every POST parameter's name
 * and value with no delimiters, the parameters sorted by name in case-sensitive ("Unix-style") order; HMAC-SHA1 of
 * that string keyed with the account's auth token; base64. It signs parsed parameters, not the raw body, so the
 * caller passes the decoded form fields and the public URL Twilio was given (not the one a proxy rewrote).
 * Pure functions: no I/O, no clock (Twilio's scheme has no timestamp, so replays are the route's problem).
 */

export const TWILIO_SIGNATURE_HEADER = "x-twilio-signature";

/** POST parameters as pairs in the order received (repeats allowed), or as a record of one or more values per name. */
export type TwilioParams = readonly (readonly [string, string])[] | Readonly<Record<string, string | readonly string[]>>;

/** An HMAC-SHA1 is 20 bytes, so its base64 is always 28 characters. */
const SIGNATURE_LENGTH = 28;

function pairsOf(params: TwilioParams): [string, string][] {
  if (Array.isArray(params)) return params.map(([name, value]) => [name, value]);
  return Object.entries(params as Record<string, string | readonly string[]>).flatMap(([name, values]) =>
    (typeof values === "string" ? [values] : values).map((value): [string, string] => [name, value]),
  );
}

/** Case-sensitive byte order of the UTF-8 form, which is what "Unix-style" sorting means for non-ASCII names too. */
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));

/**
 * The string Twilio signs. Twilio's page does not say how a name that appears more than once is ordered; we sort
 * its values too, so the result does not depend on the order they arrived in (Twilio's own form webhooks number
 * their repeated fields instead, `MediaUrl0`, `MediaUrl1`, so this case does not arise from them).
 */
export function twilioSignedString(url: string, params: TwilioParams): string {
  const pairs = pairsOf(params).sort(([nameA, valueA], [nameB, valueB]) => byteOrder(nameA, nameB) || byteOrder(valueA, valueB));
  return url + pairs.map(([name, value]) => name + value).join("");
}

/** The `X-Twilio-Signature` Twilio would send for this request, signed with `authToken`. */
export function twilioSignature(authToken: string, url: string, params: TwilioParams): string {
  return createHmac("sha1", authToken).update(twilioSignedString(url, params), "utf8").digest("base64");
}

/**
 * Whether `header` is the signature of this request under any of `authTokens` (the current token and, during a
 * rotation's overlap, the previous one). A missing header or one of the wrong length is refused before any MAC is
 * computed; each token's signature is compared in constant time, and every token is tried, so the time taken does not
 * say which one matched.
 */
export function verifyTwilioSignature(
  header: string | null | undefined,
  authTokens: readonly string[],
  url: string,
  params: TwilioParams,
): boolean {
  if (typeof header !== "string" || header.length !== SIGNATURE_LENGTH) return false;
  // Compared as text, not as decoded bytes: base64 has spare bits, and a header differing only in them is not Twilio's.
  const given = Buffer.from(header, "utf8");
  if (given.length !== SIGNATURE_LENGTH) return false;
  let matched = false;
  for (const token of authTokens) {
    if (token.length === 0) continue; // an unset token must never verify a signature made with the empty key
    if (timingSafeEqual(Buffer.from(twilioSignature(token, url, params), "utf8"), given)) matched = true;
  }
  return matched;
}

/** The request target as sent (path and query), without scheme and authority. */
const targetOf = (url: string) => url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, "") || "/";

/**
 * The URL Twilio signed: MESSAGING_PUBLIC_URL followed by the path and query this request named, since behind a
 * proxy the request's own URL (scheme, host, port) is not the one Twilio was given; the request URL itself when no
 * public URL is set. Twilio documents that it is inconsistent about a default port (`:443`) in the signed URL, and
 * its own libraries accept either spelling, so both are tried.
 */
export function twilioSignedUrls(publicUrl: string | undefined, requestUrl: string): string[] {
  const url = publicUrl ? publicUrl.replace(/\/+$/, "") + targetOf(requestUrl) : requestUrl;
  const parts = /^(https?):\/\/([^/?#:]+)(?::(\d+))?(.*)$/i.exec(url);
  if (!parts) return [url];
  const [, scheme, host, port, rest] = parts;
  const standard = scheme!.toLowerCase() === "https" ? "443" : "80";
  if (port === undefined) return [url, `${scheme}://${host}:${standard}${rest}`];
  if (port === standard) return [url, `${scheme}://${host}${rest}`];
  return [url];
}
