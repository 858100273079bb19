import { describe, expect, test } from "bun:test";
import { type AddressClass, canonicalAddress, classifyAddress } from "../../src/security/address-class.ts";

describe("classifyAddress: addresses an outbound request must not reach", () => {
  test.each<[string, AddressClass]>([
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["::1", "loopback"],
    ["0:0:0:0:0:0:0:1", "loopback"],
    ["10.0.0.1", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.0.1", "private"],
    ["fec0::1", "private"],
    ["169.254.169.254", "link_local"],
    ["169.254.0.1", "link_local"],
    ["fe80::1", "link_local"],
    ["fe80::1%eth0", "link_local"],
    ["febf::1", "link_local"],
    ["100.64.0.1", "cgnat"],
    ["100.127.255.255", "cgnat"],
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["::", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["ff02::1", "multicast"],
    ["ff0e::1", "multicast"],
    ["255.255.255.255", "broadcast"],
    ["240.0.0.1", "reserved"],
    ["192.0.0.8", "reserved"],
    ["198.18.0.1", "reserved"],
    ["100::1", "reserved"],
    ["4000::1", "reserved"],
    ["192.0.2.1", "documentation"],
    ["198.51.100.1", "documentation"],
    ["203.0.113.1", "documentation"],
    ["2001:db8::1", "documentation"],
    ["3fff::1", "documentation"],
    ["fc00::1", "unique_local"],
    ["fd00:ec2::254", "unique_local"],
    ["not an address", "reserved"],
  ])("%s is %s", (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
  });
});

describe("classifyAddress: IPv6 forms that carry an IPv4 address are judged by that address", () => {
  test.each<[string, AddressClass, string]>([
    ["::ffff:127.0.0.1", "loopback", "IPv4-mapped, dotted"],
    ["::ffff:7f00:1", "loopback", "IPv4-mapped, hex"],
    ["::ffff:a9fe:a9fe", "link_local", "IPv4-mapped metadata address"],
    ["::127.0.0.1", "loopback", "IPv4-compatible"],
    ["::a00:1", "private", "IPv4-compatible 10.0.0.1"],
    ["64:ff9b::7f00:1", "loopback", "NAT64"],
    ["64:ff9b::10.0.0.1", "private", "NAT64, dotted"],
    ["64:ff9b:1::1", "reserved", "local-use NAT64"],
    ["2002:7f00:1::", "loopback", "6to4 of 127.0.0.1"],
    ["2002:a9fe:a9fe::1", "link_local", "6to4 of 169.254.169.254"],
    ["2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback", "Teredo, client 127.0.0.1 (bits flipped)"],
    ["2001:0:7f00:1::1", "loopback", "Teredo, server 127.0.0.1"],
  ])("%s is %s (%s)", (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
  });

  test.each([
    ["::ffff:8.8.8.8"],
    ["64:ff9b::808:808"],
    ["2002:808:808::1"],
  ])("%s carries a public IPv4 address and is public", (address) => {
    expect(classifyAddress(address)).toBe("public");
  });
});

describe("classifyAddress: public unicast", () => {
  test.each([["8.8.8.8"], ["93.184.215.14"], ["172.32.0.1"], ["100.128.0.1"], ["169.253.255.255"], ["2606:4700:4700::1111"], ["2a00:1450::1"]])(
    "%s is public",
    (address) => {
      expect(classifyAddress(address)).toBe("public");
    },
  );
});

describe("canonicalAddress: one spelling per address, so an allowlisted IP matches however it is written", () => {
  test.each([
    ["::1", "::1"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["[::1]", "::1"],
    ["::FFFF:127.0.0.1", "::ffff:7f00:1"],
    ["fe80::1%eth0", "fe80::1"],
    ["127.0.0.1", "127.0.0.1"],
  ])("%s → %s", (text, canonical) => {
    expect(canonicalAddress(text)).toBe(canonical);
  });

  test("a name is not an address", () => {
    expect(canonicalAddress("allowed.test")).toBeUndefined();
  });
});
