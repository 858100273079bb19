import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/config/index.ts";
import { createEgress, type EgressOptions, EgressRefusedError, egressFromConfig, type Resolver } from "../../src/security/egress.ts";

/**
 * The guard's checks, attempted the way an attacker who controls a URL (or a DNS answer) would. Only
 * `check` is called: nothing here connects anywhere, so a public-looking address is safe to hand out.
 */

const PUBLIC = "93.184.215.14";

const resolvingTo = (...addresses: string[]): Resolver => async () =>
  addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));

const guard = (overrides: Partial<EgressOptions> = {}) =>
  createEgress({ allowlist: ["allowed.test", ".partner.test"], allowHttp: false, resolve: resolvingTo(PUBLIC), ...overrides });

async function refusal(promise: Promise<unknown>): Promise<EgressRefusedError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(EgressRefusedError);
  return error as EgressRefusedError;
}

describe("URL tricks: every spelling of an internal host is normalised first, then refused", () => {
  test.each([
    ["decimal IPv4", "https://2130706433/", "127.0.0.1"],
    ["octal IPv4", "https://0177.0.0.1/", "127.0.0.1"],
    ["hex IPv4", "https://0x7f.1/", "127.0.0.1"],
    ["one hex number", "https://0x7f000001/", "127.0.0.1"],
    ["short IPv4", "https://127.1/", "127.0.0.1"],
    ["IPv4 with a trailing dot", "https://127.0.0.1./", "127.0.0.1"],
    ["IPv4-mapped IPv6, dotted", "https://[::ffff:127.0.0.1]/", "[::ffff:7f00:1]"],
    ["IPv4-mapped IPv6, hex", "https://[::ffff:7f00:1]/", "[::ffff:7f00:1]"],
    ["IPv6 loopback", "https://[::1]/", "[::1]"],
    ["IPv6 loopback, long form", "https://[0:0:0:0:0:0:0:1]/", "[::1]"],
    ["unspecified IPv4", "https://0.0.0.0/", "0.0.0.0"],
    ["unspecified IPv4 as one digit", "https://0/", "0.0.0.0"],
    ["unspecified IPv6", "https://[::]/", "[::]"],
    ["cloud metadata address", "https://169.254.169.254/latest/meta-data/", "169.254.169.254"],
    ["cloud metadata address in hex", "https://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"],
    ["cloud metadata, IPv4-mapped", "https://[::ffff:a9fe:a9fe]/", "[::ffff:a9fe:a9fe]"],
    ["cloud metadata, IPv6 (AWS)", "https://[fd00:ec2::254]/", "[fd00:ec2::254]"],
    ["NAT64 of loopback", "https://[64:ff9b::7f00:1]/", "[64:ff9b::7f00:1]"],
    ["6to4 of loopback", "https://[2002:7f00:1::]/", "[2002:7f00:1::]"],
    ["metadata by name", "https://metadata.google.internal/", "metadata.google.internal"],
    ["localhost", "https://localhost/", "localhost"],
    ["localhost in mixed case", "https://LocalHost/", "localhost"],
    ["percent-encoded IPv4", "https://%31%32%37.0.0.1/", "127.0.0.1"],
    ["percent-encoded name", "https://%6c%6f%63%61%6c%68%6f%73%74/", "localhost"],
    ["percent-encoded dot making a longer name", "https://allowed%2etest.evil.test/", "allowed.test.evil.test"],
    ["backslash before @", "https://evil.test\\@allowed.test/", "evil.test"],
    ["backslash as a path", "https://evil.test\\allowed.test/", "evil.test"],
    ["allowed name as a prefix", "https://allowed.test.evil.test/", "allowed.test.evil.test"],
    ["allowed name as a suffix without a dot", "https://evilallowed.test/", "evilallowed.test"],
    ["allowed name in capitals as a prefix", "https://ALLOWED.TEST.evil.test/", "allowed.test.evil.test"],
    ["trailing dot (a different name to the allowlist)", "https://allowed.test./", "allowed.test."],
    ["a .suffix entry does not allow the bare domain", "https://partner.test/", "partner.test"],
    ["a .suffix entry inside a longer name", "https://a.partner.test.evil.test/", "a.partner.test.evil.test"],
    ["IDN homograph: Cyrillic а", "https://аllowed.test/", "xn--llowed-2nf.test"],
    ["IDN homograph: Cyrillic е in the TLD", "https://allowed.tеst/", "allowed.xn--tst-rdd"],
  ])("%s: %s → host_not_allowed (%s)", async (_name, url, host) => {
    const error = await refusal(guard().check(url));
    expect(error.reason).toBe("host_not_allowed");
    expect(error.target).toBe(host);
  });

  test.each([
    ["allowed name as userinfo", "https://allowed.test@evil.test/"],
    ["allowed name and port as userinfo", "https://allowed.test:443@evil.test/"],
    ["percent-encoded slash in userinfo", "https://allowed.test%2f@evil.test/"],
    ["credentials on the allowed host", "https://user:secret@allowed.test/"],
  ])("%s: %s → userinfo", async (_name, url) => {
    expect((await refusal(guard().check(url))).reason).toBe("userinfo");
  });

  test.each([
    ["NUL in the host", "https://allowed.test%00.evil.test/"],
    ["a relative URL", "//allowed.test/"],
    ["a zone id in an IPv6 literal", "https://[::ffff:127.0.0.1%25eth0]/"],
  ])("%s: %s → invalid_url", async (_name, url) => {
    expect((await refusal(guard().check(url))).reason).toBe("invalid_url");
  });
});

describe("schemes: https only unless http is allowed", () => {
  test.each([
    ["http://allowed.test/"],
    ["file:///etc/passwd"],
    ["gopher://allowed.test:70/_SET%20x"],
    ["data:text/plain,hello"],
    ["ftp://allowed.test/"],
    ["ws://allowed.test/"],
    ["javascript:alert(1)"],
  ])("%s → scheme", async (url) => {
    expect((await refusal(guard().check(url))).reason).toBe("scheme");
  });

  test("allowHttp lets http through, on port 80 only by default", async () => {
    const http = guard({ allowHttp: true });
    expect((await http.check("http://allowed.test/")).address).toBe(PUBLIC);
    expect((await refusal(http.check("http://allowed.test:8080/"))).reason).toBe("port");
    expect((await refusal(http.check("file:///etc/passwd"))).reason).toBe("scheme");
  });

  test("MESSAGING_EGRESS_ALLOW_HTTP and SSRF_ALLOWLIST reach the guard built from the configuration", async () => {
    const off = egressFromConfig(loadConfig({ env: { SSRF_ALLOWLIST: "allowed.test" } }), { resolve: resolvingTo(PUBLIC) });
    const on = egressFromConfig(loadConfig({ env: { SSRF_ALLOWLIST: "allowed.test", MESSAGING_EGRESS_ALLOW_HTTP: "true" } }), {
      resolve: resolvingTo(PUBLIC),
    });
    expect((await refusal(off.check("http://allowed.test/"))).reason).toBe("scheme");
    expect((await on.check("http://allowed.test/")).address).toBe(PUBLIC);
    expect((await refusal(on.check("http://other.test/"))).reason).toBe("host_not_allowed");
  });
});

describe("ports outside the allowed set", () => {
  test.each([
    ["https://allowed.test:8443/"],
    ["https://allowed.test:80/"],
    ["https://allowed.test:22/"],
    ["https://allowed.test:6379/"],
    ["https://allowed.test:5432/"],
  ])("%s → port", async (url) => {
    expect((await refusal(guard().check(url))).reason).toBe("port");
  });

  test("a configured port set replaces the default", async () => {
    const custom = guard({ ports: [8443] });
    expect((await custom.check("https://allowed.test:8443/")).url.port).toBe("8443");
    expect((await refusal(custom.check("https://allowed.test/"))).reason).toBe("port");
  });
});

describe("DNS answers: an allowed name that resolves inside is refused", () => {
  test.each([
    ["127.0.0.1", "loopback"],
    ["10.0.0.1", "private"],
    ["172.16.0.1", "private"],
    ["192.168.1.1", "private"],
    ["169.254.169.254", "link_local"],
    ["100.64.0.1", "cgnat"],
    ["0.0.0.0", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["240.0.0.1", "reserved"],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::127.0.0.1", "loopback"],
    ["64:ff9b::7f00:1", "loopback"],
    ["64:ff9b::a9fe:a9fe", "link_local"],
    ["2002:7f00:1::", "loopback"],
    ["2002:a00:1::1", "private"],
    ["2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"],
    ["fc00::1", "unique_local"],
    ["fd12:3456::1", "unique_local"],
    ["fe80::1", "link_local"],
    ["fe80::1%eth0", "link_local"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "documentation"],
  ])("allowed.test → %s is refused (%s)", async (address, kind) => {
    const error = await refusal(guard({ resolve: resolvingTo(address) }).check("https://allowed.test/"));
    expect(error.reason).toBe("private_address");
    expect(error.message).toContain(kind);
  });

  test("one private answer among public ones is enough to refuse (the other answer is a rebinding in waiting)", async () => {
    const error = await refusal(guard({ resolve: resolvingTo(PUBLIC, "10.0.0.7") }).check("https://allowed.test/"));
    expect(error.reason).toBe("private_address");
    expect(error.target).toBe("10.0.0.7");
  });

  test("a subdomain of a .suffix entry resolving inside is refused too", async () => {
    const error = await refusal(guard({ resolve: resolvingTo("127.0.0.1") }).check("https://api.partner.test/"));
    expect(error.reason).toBe("private_address");
  });

  test.each<[string, Resolver]>([
    ["no answer", resolvingTo()],
    ["an answer that is not an address", async () => [{ address: "evil.test", family: 4 }]],
    ["a resolver error", async () => Promise.reject(new Error("ENOTFOUND"))],
    ["a resolver that throws before it returns a promise", () => { throw new Error("EAI_FAIL"); }],
  ])("%s → resolve_failed", async (_name, resolve) => {
    expect((await refusal(guard({ resolve }).check("https://allowed.test/"))).reason).toBe("resolve_failed");
  });

  test("a resolver that never answers is cut off by the total timeout", async () => {
    const started = performance.now();
    const error = await refusal(guard({ resolve: () => new Promise(() => {}), timeoutMs: 200 }).check("https://allowed.test/"));
    expect(error.reason).toBe("timeout");
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe("what is allowed", () => {
  test("an allowlisted name resolving to a public address, with the address it must connect to", async () => {
    let asked = "";
    const target = await guard({ resolve: async (host) => ((asked = host), [{ address: PUBLIC, family: 4 }]) }).check(
      "https://allowed.test/v1/messages",
    );
    expect(asked).toBe("allowed.test");
    expect(target).toMatchObject({ address: PUBLIC, family: 4 });
    expect(target.url.href).toBe("https://allowed.test/v1/messages");
  });

  test("names are compared case-insensitively and as punycode", async () => {
    const idn = guard({ allowlist: ["bücher.test"] });
    expect((await guard().check("https://ALLOWED.Test/")).url.hostname).toBe("allowed.test");
    expect((await idn.check("https://bücher.test/")).url.hostname).toBe("xn--bcher-kva.test");
    expect((await idn.check("https://xn--bcher-kva.test/")).address).toBe(PUBLIC);
  });

  test("a .suffix entry allows any subdomain", async () => {
    expect((await guard().check("https://api.partner.test/")).address).toBe(PUBLIC);
    expect((await guard().check("https://a.b.partner.test/")).address).toBe(PUBLIC);
  });

  test("an IP literal entry allows exactly that address, even loopback, however the URL spells it", async () => {
    const loopback = guard({ allowlist: ["127.0.0.1", "::1"] });
    expect((await loopback.check("https://127.0.0.1/")).address).toBe("127.0.0.1");
    expect((await loopback.check("https://2130706433/")).address).toBe("127.0.0.1");
    expect((await loopback.check("https://[0:0::1]/")).address).toBe("::1");
    expect((await refusal(loopback.check("https://127.0.0.2/"))).reason).toBe("host_not_allowed");
  });

  test("an IP literal entry also admits that address as a DNS answer, and no other", async () => {
    const withAddress = guard({ allowlist: ["allowed.test", "10.0.0.7"], resolve: resolvingTo("10.0.0.7") });
    expect((await withAddress.check("https://allowed.test/")).address).toBe("10.0.0.7");
    const neighbour = guard({ allowlist: ["allowed.test", "10.0.0.7"], resolve: resolvingTo("10.0.0.8") });
    expect((await refusal(neighbour.check("https://allowed.test/"))).reason).toBe("private_address");
  });

  test("an allowlist entry that is not a host stops the guard from being built", () => {
    expect(() => createEgress({ allowlist: ["exa mple.test"], allowHttp: false })).toThrow(/SSRF_ALLOWLIST entry "exa mple.test"/);
  });
});
