/**
 * The config file's `providers` and `routes`: each kind read from JSON and TOML, the refusals (each one line
 * naming the provider and what is wrong), the credentials each kind needs, and `check`'s verdicts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../../src/config/index.ts";
import { assertProvidersReady, type ServiceConfig as Config, loadServiceConfig } from "../../src/providers/config.ts";
import { CREDENTIAL_NAMES, type ProviderConfig, requiredSecrets } from "../../src/providers/config.ts";
import { registryConfig } from "../../src/providers/registry.ts";
import { runChecks } from "../../src/diagnostics/check.ts";
import { configFiles } from "../helpers/config-files.ts";

const files = configFiles("msg-test-providers-");
afterAll(files.remove);
const configFile = files.write;
const dir = files.dir;

const TWILIO = { name: "twilio-main", kind: "twilio", account_sid: "AC123", from: "+15550001111" };
const SENDGRID = { name: "sg", kind: "sendgrid", from: "noreply@example.com", event_verification_key: "MFkw" };
const SMTP = { name: "relay", kind: "smtp", host: "smtp.example.com", port: 587, require_tls: true, user: "mailer", from: "noreply@example.com" };
const ROUTES = { sms: ["twilio-main"], mms: ["twilio-main"], email: ["sg", "relay"] };
const SECRETS = { SSRF_ALLOWLIST: "api.twilio.com,api.sendgrid.com" };

const TOML = `
ssrf_allowlist = ["api.twilio.com", "api.sendgrid.com"]

[[providers]]
name = "twilio-main"
kind = "twilio"
account_sid = "AC123"
from = "+15550001111"
max_per_second = 1

[[providers]]
name = "sg"
kind = "sendgrid"
from = "noreply@example.com"
event_verification_key = "MFkw"

[[providers]]
name = "relay"
kind = "smtp"
host = "smtp.example.com"
port = 587
require_tls = true
user = "mailer"
from = "noreply@example.com"
timeout_ms = 20000

[routes]
sms = ["twilio-main"]
mms = ["twilio-main"]
email = ["sg", "relay"]
`;

/** The ConfigError message of loading, then of the start-up check, for a file (fails if neither refuses). */
function refusal(file: Record<string, unknown>, env: Record<string, string> = SECRETS): string {
  try {
    assertProvidersReady(loadServiceConfig({ env, configFile: configFile("json", file) }));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("the configuration was accepted");
}

describe("reading providers", () => {
  test("every kind from a JSON file, with routes and kind settings", () => {
    const config = loadServiceConfig({ env: SECRETS, configFile: configFile("json", { providers: [TWILIO, SENDGRID, SMTP], routes: ROUTES }) });
    expect(config.providers).toEqual([
      { name: "twilio-main", kind: "twilio", channels: ["sms", "mms"], accountSid: "AC123", senders: [{ kind: "phone", number: "+15550001111" }] },
      { name: "sg", kind: "sendgrid", channels: ["email"], senders: [{ kind: "email", address: "noreply@example.com" }], eventVerificationKey: "MFkw" },
      { name: "relay", kind: "smtp", channels: ["email"], host: "smtp.example.com", port: 587, secure: false, requireTls: true, user: "mailer", senders: [{ kind: "email", address: "noreply@example.com" }] },
    ]);
    expect(config.deliveryRoutes).toEqual(ROUTES);
    expect(() => assertProvidersReady(config)).not.toThrow();
  });

  test("the same from a TOML file, with per-provider timeout and rate reaching the registry", () => {
    const config = loadServiceConfig({ env: { ...SECRETS, SSRF_ALLOWLIST: "" }, configFile: configFile("toml", TOML) });
    expect(config.providers.map((p) => p.kind)).toEqual(["twilio", "sendgrid", "smtp"]);
    expect(config.deliveryRoutes.email).toEqual(["sg", "relay"]);
    expect(() => assertProvidersReady(config)).not.toThrow();
    const registry = registryConfig({ routes: config.deliveryRoutes, timeoutMs: 1234, providers: config.providers });
    expect(registry.providers.map(({ capacity: _, ...spec }) => spec)).toEqual([
      { name: "twilio-main", kind: "twilio", timeoutMs: 1234, maxPerSecond: 1 },
      { name: "sg", kind: "sendgrid", timeoutMs: 1234 },
      { name: "relay", kind: "smtp", timeoutMs: 20000 },
    ]);
    // Twilio's own limits travel with it (10 media, 1600 code units); the senders only when the entry lists some.
    expect(registry.providers[0]!.capacity).toMatchObject({ maxAttachments: 10, maxBodyUnits: 1600 });
  });

  test("without providers, every routed name is a mock, routed by MESSAGING_DELIVERY_ROUTES", () => {
    const config = loadServiceConfig({ env: { MESSAGING_DELIVERY_ROUTES: "sms=a,b;mms=a;email=c" } });
    expect(config.providers).toEqual([]);
    const registry = registryConfig({ routes: config.deliveryRoutes, timeoutMs: 50, providers: config.providers });
    expect(registry.providers.map((p) => [p.name, p.kind])).toEqual([["a", "mock"], ["b", "mock"], ["c", "mock"]]);
  });

  test("the README's example file loads, and its `creds set` lines store what each provider needs under valid names", () => {
    const readme = readFileSync(join(import.meta.dir, "..", "..", "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Wiring a provider"));
    const toml = /```toml\n([\s\S]*?)\n```/.exec(section)![1]!;
    const stored = [...section.matchAll(/^messaging creds set (\S+) (\S+) --value-file /gm)].map((m) => `${m[1]}/${m[2]}`);
    const config = loadServiceConfig({ configFile: configFile("toml", toml) });
    expect(config.providers.map((p) => `${p.name}:${p.kind}`)).toEqual(["twilio-main:twilio", "sendgrid:sendgrid", "relay:smtp"]);
    expect(() => assertProvidersReady(config)).not.toThrow();
    for (const provider of config.providers) {
      for (const name of requiredSecrets(provider)) expect(stored).toContain(`${provider.name}/${name}`);
    }
    for (const entry of stored) {
      const [name, credential] = entry.split("/") as [string, string];
      expect(CREDENTIAL_NAMES[config.providers.find((p) => p.name === name)!.kind]).toContain(credential);
    }
  });

  test("the credentials each kind needs: Twilio's auth token or its API key secret, SendGrid's key, SMTP's password with a user", () => {
    const [twilio, sendgrid, smtp] = loadServiceConfig({ env: SECRETS, configFile: configFile("json", { providers: [TWILIO, SENDGRID, SMTP], routes: ROUTES }) }).providers as ProviderConfig[];
    expect(requiredSecrets(twilio!)).toEqual(["auth_token"]);
    expect(requiredSecrets({ ...twilio!, apiKeySid: "SK1" } as ProviderConfig)).toEqual(["api_key_secret"]);
    expect(requiredSecrets(sendgrid!)).toEqual(["api_key"]);
    expect(requiredSecrets(smtp!)).toEqual(["password"]);
    const { user: _user, ...anonymous } = smtp as Extract<ProviderConfig, { kind: "smtp" }>;
    expect(requiredSecrets(anonymous)).toEqual([]);
    expect(requiredSecrets({ name: "m", kind: "mock", channels: ["sms"] })).toEqual([]);
  });
});

describe("refusals, one line each", () => {
  const all = { providers: [TWILIO, SENDGRID, SMTP], routes: ROUTES };

  test.each([
    ["an unknown kind", { providers: [{ name: "x", kind: "carrier-pigeon" }] }, /^config file .*: provider x: unknown kind "carrier-pigeon" \(one of mock, twilio, sendgrid, smtp\)$/],
    ["a route to an undefined provider", { ...all, routes: { ...ROUTES, sms: ["nexmo"] } }, /: the route of sms names provider nexmo, which is not in providers$/],
    ["a route to a provider that cannot carry the channel", { ...all, routes: { ...ROUTES, email: ["twilio-main"] } }, /: the route of email names provider twilio-main, which does not carry email$/],
    ["providers without routes (the default names none of them)", { providers: [TWILIO] }, /: the route of sms names provider sms-mms, which is not in providers$/],
    ["a Twilio provider without account_sid", { providers: [{ name: "t", kind: "twilio", from: "+1555" }] }, /: provider t \(twilio\): account_sid: /],
    ["a Twilio provider with neither from nor a messaging service", { providers: [{ name: "t", kind: "twilio", account_sid: "AC1" }] }, /: provider t \(twilio\): needs senders \(or from\) or messaging_service_sid$/],
    ["a misspelt setting", { providers: [{ ...SENDGRID, form: "x" }] }, /: provider sg \(sendgrid\): .*form/],
    ["a name used twice", { providers: [SENDGRID, SENDGRID] }, /: provider sg is defined twice$/],
    ["routes and delivery_routes together", { routes: ROUTES, delivery_routes: "sms=a;mms=a;email=a" }, /: routes and delivery_routes are both set; keep one$/],
  ])("%s", (_what, file, expected) => {
    expect(refusal(file)).toMatch(expected);
  });

  test("an API host missing from SSRF_ALLOWLIST is refused, not added silently", () => {
    expect(refusal(all, { ...SECRETS, SSRF_ALLOWLIST: "api.sendgrid.com" })).toBe(
      "provider twilio-main (twilio): https://api.twilio.com is refused by the egress guard (host api.twilio.com is not in SSRF_ALLOWLIST)",
    );
  });

  test("an http base_url without MESSAGING_EGRESS_ALLOW_HTTP is refused", () => {
    const file = { ...all, providers: [{ ...TWILIO, base_url: "http://127.0.0.1:9999" }, SENDGRID, SMTP] };
    expect(refusal(file, { ...SECRETS, SSRF_ALLOWLIST: "127.0.0.1,api.sendgrid.com" })).toMatch(/^provider twilio-main \(twilio\): .*scheme http: is not allowed/);
  });
});

describe("check", () => {
  const checkOf = async (config: Config) => (await runChecks({ ...config, dataDir: join(dir, "no-db") })).find((c) => c.check === "providers");

  test("warns that nothing leaves the machine when no providers are configured", async () => {
    expect(await checkOf(loadServiceConfig({}))).toEqual({
      check: "providers",
      status: "warn",
      message: "no providers are configured: every channel uses the built-in mock and nothing leaves this machine",
    });
  });

  test("fails on a provider the egress guard refuses, and lists them when all can reach their APIs", async () => {
    const path = configFile("json", { providers: [TWILIO, SENDGRID, SMTP], routes: ROUTES });
    const refused = await checkOf(loadServiceConfig({ env: { SSRF_ALLOWLIST: "api.twilio.com" }, configFile: path }));
    expect(refused).toMatchObject({ status: "error", message: expect.stringContaining("provider sg (sendgrid): https://api.sendgrid.com is refused by the egress guard") });
    const ready = await checkOf(loadServiceConfig({ env: SECRETS, configFile: path }));
    expect(ready).toMatchObject({ status: "ok", message: expect.stringContaining("twilio-main (twilio), sg (sendgrid), relay (smtp)") });
  });
});
