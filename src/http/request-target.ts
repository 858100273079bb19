/**
 * The path a request names, from its target as the runtime passes it on: an absolute URL for ordinary requests,
 * the bare target for some methods (`CONNECT /x` arrives as `/x`), or no path at all (`CONNECT host:port`, whose
 * target is an authority and may be an address). Null when there is no path; never throws, unlike `new URL`.
 */
export function requestPath(url: string): string | null {
  let rest: string;
  if (url.startsWith("/")) rest = url;
  else {
    const scheme = /^https?:\/\/[^/?#]*/i.exec(url);
    if (!scheme) return null;
    rest = url.slice(scheme[0].length) || "/";
  }
  if (!rest.startsWith("/")) rest = `/${rest}`;
  const end = rest.search(/[?#]/);
  return end === -1 ? rest : rest.slice(0, end);
}
