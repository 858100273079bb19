import { describe, expect, test } from "bun:test";
import { CHANNELS, type Channel, normalizeAddress, type Transport, transportOf } from "../../src/domain/channel";

describe("transportOf", () => {
  test.each<[Channel, Transport]>([
    ["sms", "sms"],
    ["mms", "sms"],
    ["email", "email"],
  ])("%p travels on %p", (channel, transport) => {
    expect(transportOf(channel)).toBe(transport);
  });

  test("SMS and MMS share one transport so a person sees one thread", () => {
    expect(transportOf("sms")).toBe(transportOf("mms"));
  });

  test("every channel has a transport", () => {
    expect(CHANNELS.map(transportOf)).toEqual(["sms", "sms", "email"]);
  });
});

describe("normalizeAddress", () => {
  test.each<[Transport, string, string, string]>([
    ["sms", "+1 (201) 555-0100", "+12015550100", "phone normalization on sms"],
    ["sms", "201.555.0100", "2015550100", "no + is invented on sms"],
    ["email", "User+Promo@Example.com", "user@example.com", "email normalization on email"],
    ["email", " A@B.CO ", "a@b.co", "trims on email"],
  ])("%p %p → %p (%s)", (transport, raw, expected) => {
    expect(normalizeAddress(transport, raw)).toBe(expected);
  });
});
