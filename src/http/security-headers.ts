export interface SecurityHeadersOptions {
  enabled: boolean;
  hsts: boolean;
}

const API_CSP = "default-src 'none'; frame-ancestors 'none'";
/**
 * The API reference page runs the bundled Scalar script and its inline styles from this origin and nothing else
 * (no CDN: the binary works without internet).
 */
export const DOCS_CSP =
  "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** Header values computed once at start-up; applied to every response by the request-context plugin. */
export function securityHeaders(options: SecurityHeadersOptions): Record<string, string> {
  if (!options.enabled) return { "cache-control": "no-store" };
  const headers: Record<string, string> = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": API_CSP,
    "cache-control": "no-store",
  };
  if (options.hsts) headers["strict-transport-security"] = "max-age=31536000; includeSubDomains";
  return headers;
}
