import { describe, expect, test } from "bun:test";
import { clientAddress, MAX_FORWARDED_HOPS, parseProxyRange, TrustedProxies } from "../../src/security/client-address.ts";
import { loadConfig } from "../../src/config/index.ts";

// Attacks on the client address: who a request counts against for the per-IP rate limit and the
// auth-failure throttle. The client writes X-Forwarded-For as it likes; only our proxies' hops are facts.

describe("MESSAGING_TRUSTED_PROXIES entries", () => {
  test.each([
    ["10.0.0.1", { address: "10.0.0.1", prefix: 32, family: "ipv4" }],
    ["10.0.0.0/8", { address: "10.0.0.0", prefix: 8, family: "ipv4" }],
    [" 192.168.1.0/24 ", { address: "192.168.1.0", prefix: 24, family: "ipv4" }],
    ["::1", { address: "::1", prefix: 128, family: "ipv6" }],
    ["::1/128", { address: "::1", prefix: 128, family: "ipv6" }],
    ["fd00::/8", { address: "fd00::", prefix: 8, family: "ipv6" }],
  ])("%s is read as a range", (entry, range) => {
    expect(parseProxyRange(entry)).toEqual(range as ReturnType<typeof parseProxyRange>);
  });

  test.each([
    ["proxy.internal", /not an IP address or CIDR range/],
    ["10.0.0", /not an IP address/],
    ["999.0.0.1", /not an IP address/],
    ["10.0.0.0/33", /prefix length outside 1\.\.32/],
    ["fd00::/129", /prefix length outside 1\.\.128/],
    ["10.0.0.0/", /prefix length/],
    ["10.0.0.0/8/8", /prefix length/],
    ["10.0.0.0/ 8", /prefix length/],
    ["10.0.0.0/0x8", /prefix length/],
    ["0.0.0.0/0", /would trust every peer/],
    ["::/0", /would trust every peer/],
    ["[::1]", /not an IP address/],
  ])("%s is refused", (entry, reason) => {
    expect(parseProxyRange(entry)).toMatch(reason);
  });

  test("an invalid entry is refused at config load with one line naming it", () => {
    const load = () => loadConfig({ env: { MESSAGING_TRUSTED_PROXIES: "10.0.0.0/8, proxy.internal" } });
    expect(load).toThrow(/MESSAGING_TRUSTED_PROXIES.*"proxy\.internal" is not an IP address or CIDR range/);
    try {
      load();
    } catch (err) {
      expect((err as Error).message.split("\n")).toHaveLength(1);
    }
  });

  test("valid ranges load as the typed list", () => {
    const config = loadConfig({ env: { MESSAGING_TRUSTED_PROXIES: "10.0.0.0/8, ::1/128,fd00::/8, 192.0.2.7" } });
    expect(config.trustedProxies).toEqual(["10.0.0.0/8", "::1/128", "fd00::/8", "192.0.2.7"]);
  });
});

describe("range matching", () => {
  const trusted = new TrustedProxies(["10.0.0.0/8", "192.0.2.7", "::1/128", "fd00::/8"]);

  test.each([
    ["10.0.0.1", true],
    ["10.255.255.255", true],
    ["11.0.0.0", false],
    ["9.255.255.255", false],
    ["192.0.2.7", true],
    ["192.0.2.8", false],
    ["::1", true],
    ["::2", false],
    ["fd00::1", true],
    ["fdff:ffff::1", true],
    ["fe00::1", false],
    // IPv4-mapped IPv6, as Bun may report an IPv4 peer on a dual-stack socket, matches IPv4 ranges.
    ["::ffff:10.1.2.3", true],
    ["::FFFF:10.1.2.3", true],
    ["::ffff:a01:203", true],
    ["0:0:0:0:0:ffff:10.1.2.3", true],
    ["::ffff:192.0.2.8", false],
    ["::ffff:11.0.0.1", false],
    ["not-an-ip", false],
    ["", false],
    ["local", false],
  ])("%s trusted: %p", (address, expected) => {
    expect(trusted.has(address)).toBe(expected);
  });

  test("an IPv6 range does not swallow IPv4 addresses, nor the other way round", () => {
    expect(new TrustedProxies(["::/1"]).has("10.0.0.1")).toBe(false);
    expect(new TrustedProxies(["0.0.0.0/1"]).has("::1")).toBe(false);
  });
});

describe("clientAddress: spoofing attempts", () => {
  const proxies = new TrustedProxies(["10.0.0.0/8", "fd00::/8"]);
  const none = new TrustedProxies([]);

  test.each<[string, string, string | null, TrustedProxies, string]>([
    ["no proxies configured: the header is never read", "203.0.113.9", "1.2.3.4", none, "203.0.113.9"],
    ["an untrusted peer's X-Forwarded-For is ignored", "203.0.113.9", "1.2.3.4", proxies, "203.0.113.9"],
    ["an untrusted peer claiming to be behind our proxy", "203.0.113.9", "1.2.3.4, 10.0.0.5", proxies, "203.0.113.9"],
    ["a trusted peer without the header is the client", "10.0.0.5", null, proxies, "10.0.0.5"],
    ["a trusted peer: its single hop is the client", "10.0.0.5", "198.51.100.1", proxies, "198.51.100.1"],
    ["client-forged left-most entries are skipped: the right-most untrusted hop wins", "10.0.0.5", "1.1.1.1, 2.2.2.2, 198.51.100.1", proxies, "198.51.100.1"],
    ["a client forging one of our proxies' addresses on the left gains nothing", "10.0.0.5", "10.9.9.9, 198.51.100.1", proxies, "198.51.100.1"],
    ["a chain of two trusted proxies", "10.0.0.5", "1.1.1.1, 198.51.100.1, 10.0.0.6", proxies, "198.51.100.1"],
    ["a chain through an IPv6 proxy", "fd00::1", "198.51.100.1, fd00::2", proxies, "198.51.100.1"],
    ["every hop trusted: the left-most hop (the request began inside)", "10.0.0.5", "10.0.0.7, 10.0.0.6", proxies, "10.0.0.7"],
    ["a mapped trusted peer is trusted, and a mapped client is returned as IPv4", "::ffff:10.0.0.5", "::ffff:198.51.100.1", proxies, "198.51.100.1"],
    ["a mapped untrusted peer is returned as IPv4 (one budget for both spellings)", "::ffff:203.0.113.9", "1.2.3.4", proxies, "203.0.113.9"],
    ["a peer of 'local' (no socket) is never trusted", "local", "1.2.3.4", proxies, "local"],
    ["whitespace around hops is ignored", "10.0.0.5", "  198.51.100.1  ,\t10.0.0.6 ", proxies, "198.51.100.1"],
  ])("%s", (_name, peer, xff, trusted, expected) => {
    expect(clientAddress(peer, xff, trusted)).toBe(expected);
  });

  // A malformed hop stops the walk; the last good address seen (the hop to its right, or the peer) is the client.
  test.each<[string, string, string]>([
    ["garbage as the only hop: the proxy itself", "not-an-ip", "10.0.0.5"],
    ["an empty header", "", "10.0.0.5"],
    ["an empty entry right of the client", "198.51.100.1, ", "10.0.0.5"],
    ["garbage behind a trusted hop: that trusted hop", "evil, 10.0.0.6", "10.0.0.6"],
    ["garbage left of the real client does not matter", "evil, 198.51.100.1", "198.51.100.1"],
    ["an out-of-range address", "999.999.999.999, 10.0.0.6", "10.0.0.6"],
    ["an IPv4 hop with a port (plain addresses only)", "198.51.100.1:4444", "10.0.0.5"],
    ["a bracketed IPv6 hop", "[2001:db8::1]", "10.0.0.5"],
    ["a bracketed IPv6 hop with a port", "[2001:db8::1]:443", "10.0.0.5"],
    ["an RFC 7239 Forwarded-style value", "for=198.51.100.1", "10.0.0.5"],
    ["a short-form IPv4 (127.1)", "127.1", "10.0.0.5"],
    ["a decimal IPv4 (2130706433)", "2130706433", "10.0.0.5"],
    ["an octal-looking IPv4", "010.0.0.1", "10.0.0.5"],
    ["a hop with a NUL byte", "198.51.100.1\u0000", "10.0.0.5"],
  ])("%s", (_name, xff, expected) => {
    expect(clientAddress("10.0.0.5", xff, proxies)).toBe(expected);
  });

  test("several X-Forwarded-For headers are read as one list, in order (as Headers.get joins them)", () => {
    const headers = new Headers();
    headers.append("x-forwarded-for", "1.1.1.1, 2.2.2.2");
    headers.append("x-forwarded-for", "198.51.100.1");
    headers.append("x-forwarded-for", "10.0.0.6");
    expect(clientAddress("10.0.0.5", headers.get("x-forwarded-for"), proxies)).toBe("198.51.100.1");
  });

  test(`a huge header costs at most ${MAX_FORWARDED_HOPS} hops: past them the last hop read is the client`, () => {
    const trustedHops = Array.from({ length: 10_000 }, (_, i) => `10.0.${(i >> 8) & 255}.${i & 255}`);
    const xff = ["198.51.100.1", ...trustedHops].join(", ");
    expect(xff.length).toBeGreaterThan(100_000);
    const started = performance.now();
    const client = clientAddress("10.0.0.5", xff, proxies);
    const elapsed = performance.now() - started;
    expect(client).toBe(trustedHops[trustedHops.length - MAX_FORWARDED_HOPS]!);
    expect(elapsed).toBeLessThan(50);
  });

  test("a huge header from an untrusted peer is not even read", () => {
    expect(clientAddress("203.0.113.9", "1.1.1.1,".repeat(100_000), proxies)).toBe("203.0.113.9");
  });
});
