// Reading one MESSAGING_TRUSTED_PROXIES entry: pure parsing, so the settings table can validate it without the
// request-side code of security/client-address.ts.
import { isIP } from "node:net";

/** A parsed entry of `MESSAGING_TRUSTED_PROXIES`: a plain address is a /32 (IPv4) or /128 (IPv6). */
export interface ProxyRange {
  address: string;
  prefix: number;
  family: "ipv4" | "ipv6";
}

/**
 * Reads one `MESSAGING_TRUSTED_PROXIES` entry (`10.0.0.1`, `10.0.0.0/8`, `::1/128`, `fd00::/8`); returns
 * the reason when it is unusable. A /0 is refused: trusting every peer lets any client choose its own
 * address by writing `X-Forwarded-For`, which is the spoofing this setting exists to prevent.
 */
export function parseProxyRange(entry: string): ProxyRange | string {
  const text = entry.trim();
  const slash = text.indexOf("/");
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return `"${entry}" is not an IP address or CIDR range (e.g. 10.0.0.1, 10.0.0.0/8, fd00::/8)`;
  const family = version === 4 ? "ipv4" : "ipv6";
  const bits = version === 4 ? 32 : 128;
  if (slash === -1) return { address, prefix: bits, family };
  const prefixText = text.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (prefix === 0) return `"${entry}" would trust every peer, letting any client choose its address through X-Forwarded-For`;
  if (!(prefix >= 1 && prefix <= bits)) return `"${entry}" has a prefix length outside 1..${bits}`;
  return { address, prefix, family };
}
