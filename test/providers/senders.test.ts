import { describe, expect, test } from "bun:test";
import { parseSender } from "../../src/providers/config.ts";
import { registryConfig, routeCheck } from "../../src/providers/registry.ts";
import { ownsSender, senderName } from "../../src/providers/senders.ts";
import type { ProviderConfig } from "../../src/providers/config.ts";

const twilio: ProviderConfig = { name: "tw", kind: "twilio", channels: ["sms", "mms"], accountSid: "AC1", senders: [{ kind: "phone", number: "+15550001111" }] };
const backup: ProviderConfig = { name: "tw2", kind: "twilio", channels: ["sms", "mms"], accountSid: "AC2", senders: [{ kind: "phone", number: "+15550002222" }] };
const sendgrid: ProviderConfig = {
  name: "sg",
  kind: "sendgrid",
  channels: ["email"],
  senders: [{ kind: "email", address: "noreply@example.com", name: "Example" }, { kind: "domain", domain: "mail.example.org" }],
};
const relay: ProviderConfig = { name: "relay", kind: "smtp", channels: ["email"], host: "smtp.example.com", port: 25, secure: false };
const routes = { sms: ["tw", "tw2"], mms: ["tw"], email: ["sg"] };
const check = routeCheck(registryConfig({ routes, timeoutMs: 1000, providers: [twilio, backup, sendgrid, relay] }));
const msg = (from: string, extra: { body?: string; attachments?: string[] } = {}) => ({ from, body: extra.body ?? "hi", attachments: extra.attachments ?? [] });

describe("senders a provider owns", () => {
  test("a phone sender matches however the caller wrote the number", () => {
    expect(ownsSender(twilio.senders, "sms", "+1 (555) 000-1111")).toBe(true);
    expect(ownsSender(twilio.senders, "sms", "+15550009999")).toBe(false);
  });

  test("an email sender matches its address with or without a name, in any case; @domain owns the whole domain", () => {
    expect(ownsSender(sendgrid.senders, "email", "Someone <NoReply@Example.com>")).toBe(true);
    expect(ownsSender(sendgrid.senders, "email", "alerts@mail.example.org")).toBe(true);
    expect(ownsSender(sendgrid.senders, "email", "alerts@example.org")).toBe(false);
    expect(senderName(sendgrid.senders, "noreply@example.com")).toBe("Example");
  });

  test("a provider without senders accepts any sender", () => {
    expect(ownsSender(relay.senders, "email", "anyone@anywhere.example")).toBe(true);
  });

  test("what senders may be written as, and what is refused (check and serve refuse the config)", () => {
    expect(parseSender("Example <noreply@example.com>", ["email"])).toEqual({ kind: "email", address: "noreply@example.com", name: "Example" });
    expect(parseSender("@Example.com", ["email"])).toEqual({ kind: "domain", domain: "example.com" });
    expect(parseSender("+1 555 000 1111", ["sms", "mms"])).toEqual({ kind: "phone", number: "+15550001111" });
    expect(parseSender("Example <noreply>", ["email"])).toContain("is not an email sender");
    expect(parseSender("noreply@example.com", ["sms"])).toContain("is not a phone number");
  });
});

describe("the route check made before a send is stored", () => {
  test("a sender no provider of the route owns is sender_not_allowed, naming the route", () => {
    expect(check("sms", msg("+15550009999"))).toEqual({ code: "sender_not_allowed", message: "no provider of the sms route (tw, tw2) owns this sender" });
    expect(check("sms", msg("+15550002222"))).toBeUndefined();
    expect(check("email", msg("Ops <ops@mail.example.org>"))).toBeUndefined();
  });

  test("Twilio's limits: more than 10 media, or more than 1600 UTF-16 code units of body, is a 400 naming the limit", () => {
    const media = Array.from({ length: 11 }, (_, i) => `https://cdn.example.com/${i}.png`);
    expect(check("mms", msg("+15550001111", { attachments: media }))).toMatchObject({ code: "limit", path: "attachments" });
    expect(check("mms", msg("+15550001111", { attachments: media.slice(0, 10) }))).toBeUndefined();
    // 800 emoji are 800 characters but 1600 code units: at Twilio's limit; one more letter is over it.
    expect(check("sms", msg("+15550001111", { body: "😀".repeat(800) }))).toBeUndefined();
    expect(check("sms", msg("+15550001111", { body: `${"😀".repeat(800)}a` }))).toMatchObject({ code: "limit", path: "body" });
  });

  test("a failover chain holds only the providers that own the sender", async () => {
    const { ProviderRegistry } = await import("../../src/providers/registry.ts");
    const stub = (name: string) => ({ name, send: async () => ({ kind: "accepted" as const, providerMessageId: name }) });
    const registry = new ProviderRegistry(registryConfig({ routes, timeoutMs: 1000, providers: [twilio, backup, sendgrid, relay] }), (spec) => stub(spec.name));
    expect(registry.chain("sms", msg("+15550002222")).map((p) => p.spec.name)).toEqual(["tw2"]);
    expect(registry.chain("sms", msg("+15550001111")).map((p) => p.spec.name)).toEqual(["tw"]);
    expect(registry.chain("sms").map((p) => p.spec.name)).toEqual(["tw", "tw2"]);
  });
});
