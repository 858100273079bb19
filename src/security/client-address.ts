import { BlockList, isIP } from "node:net";
import { parseProxyRange } from "../domain/proxy-range.ts";

/**
 * Which client a request counts against (per-IP rate limit, auth-failure throttling), decided from the
 * socket peer and, only when that peer is one of our proxies, from `X-Forwarded-For`.
 *
 * Every proxy appends the address it received the connection from, so the header reads left to right
 * from the (claimed) origin to the last proxy. Only the hops appended by our own proxies are facts; the
 * rest is whatever the client wrote. So the walk starts at the right, skips our proxies, and stops at the
 * first hop that is not one of them: the right-most untrusted hop, the address our outermost proxy saw.
 */

/** Hops of `X-Forwarded-For` looked at, from the right: bounds the work a huge header can cause. */
export const MAX_FORWARDED_HOPS = 32;

export { parseProxyRange, type ProxyRange } from "../domain/proxy-range.ts";

/** The set of proxy ranges whose `X-Forwarded-For` is believed. */
export class TrustedProxies {
  private readonly ranges = new BlockList();
  /** No proxy configured: the peer is always the client, and the header is never read. */
  readonly empty: boolean;

  /** Throws on an invalid entry; settings.ts has already refused those with a clear message. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const range = parseProxyRange(entry);
      if (typeof range === "string") throw new Error(`MESSAGING_TRUSTED_PROXIES: ${range}`);
      this.ranges.addSubnet(range.address, range.prefix, range.family);
    }
    this.empty = entries.length === 0;
  }

  /** True when `address` (a plain IP, IPv4-mapped IPv6 matching IPv4 ranges) lies in a trusted range. */
  has(address: string): boolean {
    const v4 = unmapIpv4(address);
    if (v4 !== undefined) return this.ranges.check(v4, "ipv4");
    const version = isIP(address);
    return version !== 0 && this.ranges.check(address, version === 4 ? "ipv4" : "ipv6");
  }
}

/**
 * The address a request counts against. `peer` is the socket's remote address (Bun may report an IPv4
 * client as `::ffff:a.b.c.d`; it is returned as `a.b.c.d`, so both spellings share one budget); `xff` is
 * every `X-Forwarded-For` header of the request, comma-joined in order (what `Headers.get` returns).
 *
 * - An untrusted peer is the client: its `X-Forwarded-For` is ignored.
 * - A trusted peer: the hops are walked from the right, skipping trusted ones; the first untrusted hop
 *   is the client. When every hop is trusted, the left-most one is (the request began inside our network).
 * - A hop that is not a plain IP address (garbage, an empty entry, `[::1]:443`, `1.2.3.4:80`) stops the
 *   walk, and the last good address seen (the hop to its right, or the peer) is the client. Our proxies
 *   write plain addresses, so a malformed hop was written by someone else; stopping there never hands the
 *   choice of address to the sender, at the cost of counting such requests against that proxy's view.
 * - At most MAX_FORWARDED_HOPS hops are read; past them the last one read is the client.
 */
export function clientAddress(peer: string, xff: string | null, trusted: TrustedProxies): string {
  const peerAddress = unmapIpv4(peer) ?? peer;
  if (trusted.empty || xff === null || !trusted.has(peerAddress)) return peerAddress;
  let client = peerAddress;
  let end = xff.length;
  for (let hops = 0; hops < MAX_FORWARDED_HOPS && end >= 0; hops++) {
    const start = xff.lastIndexOf(",", end - 1);
    const hop = xff.slice(start + 1, end).trim();
    end = start;
    if (isIP(hop) === 0) return client;
    client = unmapIpv4(hop) ?? hop;
    if (!trusted.has(client)) return client;
  }
  return client;
}

/** `::ffff:10.0.0.1` (or `::ffff:a00:1`) → `10.0.0.1`; undefined when the address is not IPv4-mapped. */
function unmapIpv4(address: string): string | undefined {
  const mapped = /^(?:::|(?:0{1,4}:){5})ffff:(.+)$/i.exec(address);
  const tail = mapped?.[1];
  if (tail === undefined || isIP(address) !== 6) return undefined;
  if (isIP(tail) === 4) return tail;
  const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(tail);
  if (!hex) return undefined;
  const high = Number.parseInt(hex[1]!, 16);
  const low = Number.parseInt(hex[2]!, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}
