import { isIP } from "node:net";

/**
 * Which IP addresses outbound requests may reach. Pure: no DNS, no sockets. The egress guard
 * (egress.ts) refuses every class but "public" unless the operator allowed that exact address.
 */

/** Why an address is not a public unicast address. */
export type AddressClass =
  | "loopback"
  | "private"
  | "link_local"
  | "cgnat"
  | "unspecified"
  | "multicast"
  | "broadcast"
  | "reserved"
  | "documentation"
  | "unique_local";

/** One range: its first bytes (IPv4: 4, IPv6: 16), its prefix length and what it is. */
type Range = readonly [bytes: readonly number[], prefix: number, kind: AddressClass];

// IANA special-purpose registries (RFC 6890 and successors). Order matters only where ranges nest:
// 255.255.255.255 is listed before the 240/4 block that contains it.
const V4_RANGES: readonly Range[] = [
  [[0, 0, 0, 0], 8, "unspecified"],
  [[10, 0, 0, 0], 8, "private"],
  [[100, 64, 0, 0], 10, "cgnat"],
  [[127, 0, 0, 0], 8, "loopback"],
  [[169, 254, 0, 0], 16, "link_local"],
  [[172, 16, 0, 0], 12, "private"],
  [[192, 0, 0, 0], 24, "reserved"],
  [[192, 0, 2, 0], 24, "documentation"],
  [[192, 88, 99, 0], 24, "reserved"],
  [[192, 168, 0, 0], 16, "private"],
  [[198, 18, 0, 0], 15, "reserved"],
  [[198, 51, 100, 0], 24, "documentation"],
  [[203, 0, 113, 0], 24, "documentation"],
  [[224, 0, 0, 0], 4, "multicast"],
  [[255, 255, 255, 255], 32, "broadcast"],
  [[240, 0, 0, 0], 4, "reserved"],
];

const V6_RANGES: readonly Range[] = [
  [[0xfe, 0x80], 10, "link_local"],
  [[0xfe, 0xc0], 10, "private"], // site-local, deprecated but still routed inside some networks
  [[0xfc], 7, "unique_local"],
  [[0xff], 8, "multicast"],
  [[0x20, 0x01, 0x0d, 0xb8], 32, "documentation"],
  [[0x3f, 0xff, 0x00], 20, "documentation"],
  [[0x00, 0x64, 0xff, 0x9b, 0x00, 0x01], 48, "reserved"], // local-use NAT64 (RFC 8215)
  [[0x01, 0x00, 0, 0, 0, 0, 0, 0], 64, "reserved"], // discard-only
];

/** The bytes of an IP address (4 or 16), or undefined when `text` is not one. A zone (`%eth0`) is ignored. */
export function ipBytes(text: string): Uint8Array | undefined {
  const address = text.replace(/^\[(.*)\]$/, "$1").replace(/%.*$/, "");
  const family = isIP(address);
  if (family === 4) return Uint8Array.from(address.split(".").map(Number));
  if (family === 6) return ipv6Bytes(address);
  return undefined;
}

function ipv6Bytes(address: string): Uint8Array {
  let text = address.toLowerCase();
  const dotted = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split(".").map(Number) as [number, number, number, number];
    text = text.slice(0, -dotted[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const groups = (part: string | undefined) => (part ? part.split(":").map((g) => parseInt(g, 16)) : []);
  const left = groups(head);
  const right = groups(tail);
  const all = tail === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/** A canonical text of an address, equal for every spelling of it (`::1`, `0:0::1`, `[::1]`). */
export function canonicalAddress(text: string): string | undefined {
  const bytes = ipBytes(text);
  if (!bytes) return undefined;
  if (bytes.length === 4) return bytes.join(".");
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16));
  return new URL(`http://[${groups.join(":")}]`).hostname.slice(1, -1);
}

function inRange(bytes: Uint8Array, [start, prefix]: Range): boolean {
  for (let bit = 0; bit < prefix; bit += 8) {
    const mask = prefix - bit >= 8 ? 0xff : (0xff << (8 - (prefix - bit))) & 0xff;
    if (((bytes[bit / 8] ?? 0) & mask) !== ((start[bit / 8] ?? 0) & mask)) return false;
  }
  return true;
}

const classOf = (bytes: Uint8Array, ranges: readonly Range[]): AddressClass | "public" =>
  ranges.find((range) => inRange(bytes, range))?.[2] ?? "public";

const startsWith = (bytes: Uint8Array, prefix: readonly number[]) => prefix.every((b, i) => bytes[i] === b);

/**
 * IPv4 addresses carried inside an IPv6 one, which a host or a translator on the path turns back into
 * IPv4 traffic: IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96), NAT64 (64:ff9b::/96), 6to4
 * (2002::/16, the address after the prefix) and Teredo (2001::/32: the server, and the client stored
 * with every bit flipped). An attacker names `::ffff:127.0.0.1` precisely because it looks like IPv6.
 */
function embeddedIpv4(bytes: Uint8Array): Uint8Array[] {
  const zeros = (from: number, to: number) => bytes.slice(from, to).every((b) => b === 0);
  if (zeros(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return [bytes.slice(12)];
  if (zeros(0, 12)) return [bytes.slice(12)];
  if (startsWith(bytes, [0x00, 0x64, 0xff, 0x9b]) && zeros(4, 12)) return [bytes.slice(12)];
  if (startsWith(bytes, [0x20, 0x02])) return [bytes.slice(2, 6)];
  if (startsWith(bytes, [0x20, 0x01, 0x00, 0x00])) return [bytes.slice(4, 8), bytes.slice(12).map((b) => b ^ 0xff)];
  return [];
}

/**
 * "public" for a global unicast address, otherwise the class that makes it unfit for an outbound request
 * (an address that is not an IP at all is "reserved": nothing may connect to it). IPv6 outside 2000::/3,
 * the global unicast block, is reserved, apart from the forms that carry an IPv4 address, which are
 * judged by that address.
 */
export function classifyAddress(ip: string): AddressClass | "public" {
  const bytes = ipBytes(ip);
  if (!bytes) return "reserved";
  if (bytes.length === 4) return classOf(bytes, V4_RANGES);
  if (bytes.every((b) => b === 0)) return "unspecified";
  if (bytes.slice(0, 15).every((b) => b === 0) && bytes[15] === 1) return "loopback";
  const own = classOf(bytes, V6_RANGES);
  if (own !== "public") return own;
  const embedded = embeddedIpv4(bytes);
  if (embedded.length > 0) {
    return embedded.map((v4) => classOf(v4, V4_RANGES)).find((kind) => kind !== "public") ?? "public";
  }
  return (bytes[0]! & 0xe0) === 0x20 ? "public" : "reserved";
}

/** True for a bind address only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const address = host.replace(/^\[(.*)\]$/, "$1");
  // classifyAddress reads anything that is not an address (a host name) as reserved, never as loopback.
  return host === "localhost" || classifyAddress(address) === "loopback";
}
