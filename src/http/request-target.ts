/**
 * The path a request names, from its target as the runtime passes it on: an absolute URL for ordinary requests,
 * the bare target for some methods (`CONNECT /x` arrives as `/x`), or no path at all (`CONNECT host:port`, whose
 * target is an authority and may be an address). Null when there is no path; never throws, unlike `new URL`.
 * Every request computes it once (request-state.ts), so the usual `http://host/path` is read without a regex.
 */
export function requestPath(url: string): string | null {
  if (url.charCodeAt(0) === SLASH) return cutQuery(url, 0);
  let authority: number;
  if (url.startsWith("http://")) authority = 7;
  else if (url.startsWith("https://")) authority = 8;
  else {
    const scheme = /^https?:\/\//i.exec(url);
    if (!scheme) return null;
    authority = scheme[0].length;
  }
  let i = authority;
  for (; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === SLASH || c === QUESTION || c === HASH) break;
  }
  if (i === url.length || url.charCodeAt(i) !== SLASH) return "/";
  return cutQuery(url, i);
}

const SLASH = 47;
const QUESTION = 63;
const HASH = 35;

/** `url` from `start` up to its query or fragment. */
function cutQuery(url: string, start: number): string {
  for (let i = start; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === QUESTION || c === HASH) return url.slice(start, i);
  }
  return start === 0 ? url : url.slice(start);
}
