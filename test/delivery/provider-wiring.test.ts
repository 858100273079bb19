/**
 * The wiring of `serve` with a configured Twilio provider: a config file whose provider points at the fake
 * Twilio on loopback (allowed explicitly through SSRF_ALLOWLIST and MESSAGING_EGRESS_ALLOW_HTTP), its auth token
 * from the credentials lookup, and createDelivery's dispatcher delivering a sent SMS to it for real; and what
 * buildProvider gives the SendGrid and SMTP adapters (the key, the sender, the address rules).
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { assertProvidersReady, loadServiceConfig, type ProviderConfig } from "../../src/providers/config.ts";
import { createDelivery, type Delivery } from "../../src/delivery-wiring.ts";
import { buildProvider } from "../../src/providers/build.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { fixedCredentials } from "../../src/security/credential-lookup.ts";
import { VERSION } from "../../src/version.ts";
import { buildTestApp, type TestApp } from "../helpers/app.ts";
import { post, smsSend, UNLIMITED } from "../helpers/messaging.ts";
import { startFakeSendGrid } from "../providers/sendgrid-fake.ts";
import { FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, type FakeTwilio, startFakeTwilio } from "../providers/twilio-fake.ts";

const silent = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, done) => done() }) });
const dir = mkdtempSync(join(tmpdir(), "msg-test-wiring-"));
let t: TestApp;
let fake: FakeTwilio;
// Every request the fake received conforms to Twilio\'s own OpenAPI description (../shared/specs/).
afterEach(() => fake?.assertConformant());
let delivery: Delivery | undefined;

beforeAll(async () => {
  [t, fake] = await Promise.all([buildTestApp({ config: UNLIMITED }), startFakeTwilio()]);
});
afterAll(async () => {
  await delivery?.stop(1000, 100);
  await Promise.all([t.close(), fake.close()]);
  rmSync(dir, { recursive: true, force: true });
});

test("a twilio provider from the config file delivers a sent SMS to the fake Twilio, which gives it its sid", async () => {
  const configFile = join(dir, "messaging.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      providers: [
        { name: "twilio-test", kind: "twilio", account_sid: FAKE_ACCOUNT_SID, from: "+15005550006", base_url: fake.baseUrl },
        { name: "outbox", kind: "mock" },
      ],
      routes: { sms: ["twilio-test"], mms: ["twilio-test"], email: ["outbox"] },
    }),
  );
  const config = loadServiceConfig({
    configFile,
    env: {
      SSRF_ALLOWLIST: "127.0.0.1",
      MESSAGING_EGRESS_ALLOW_HTTP: "true",
      MESSAGING_PUBLIC_URL: "https://messaging.example.com",
      MESSAGING_DELIVERY_POLL_MS: "20",
      LOG_LEVEL: "silent",
    },
  });
  assertProvidersReady(config);
  const credentials = fixedCredentials({ "twilio-test/auth_token": FAKE_AUTH_TOKEN });
  delivery = createDelivery(config, t.database, createMetrics({ version: VERSION }), silent, credentials);

  const sent = smsSend({ body: "over the wire", from: "+1 500-555-0006" });
  const res = await post(t.app, "/api/messages/sms", sent);
  expect(res.status).toBe(202);
  await delivery.start();

  const deadline = Date.now() + 10_000;
  let row: { status: string; provider: string; provider_message_id: string | null } | undefined;
  while (Date.now() < deadline) {
    [row] = await t.database.sql.query<{ status: string; provider: string; provider_message_id: string | null }>(
      "SELECT status, provider, provider_message_id FROM messages WHERE id = $1",
      [res.json.id],
    );
    if (row?.status === "sent") break;
    await Bun.sleep(20);
  }
  expect(fake.sids).toHaveLength(1);
  expect(row).toEqual({ status: "sent", provider: "twilio-test", provider_message_id: fake.sids[0]! });
  const form = Object.fromEntries(fake.requests[0]!.form);
  // The message's own sender, in E.164 as Twilio asks, whatever separators the caller typed.
  expect(form).toMatchObject({
    To: String(sent.to).replace(/[^\d+]/g, ""),
    From: "+15005550006",
    Body: "over the wire",
    StatusCallback: "https://messaging.example.com/api/webhooks/twilio/twilio-test/status",
  });
  const basic = Buffer.from(`${FAKE_ACCOUNT_SID}:${FAKE_AUTH_TOKEN}`).toString("base64");
  expect(fake.requests[0]!.headers.authorization).toBe(`Basic ${basic}`);
});

/** A config file holding exactly these providers (routes to the first), loaded with these variables. */
function configWith(providers: Record<string, unknown>[], env: Record<string, string>) {
  const configFile = join(dir, `config-${providers.map((p) => p.name).join("-")}.json`);
  const first = String(providers[0]!.name);
  writeFileSync(configFile, JSON.stringify({ providers: [...providers, { name: "m", kind: "mock" }], routes: { sms: ["m"], mms: ["m"], email: [first] } }));
  const config = loadServiceConfig({ configFile, env });
  return { config, provider: config.providers[0] as Exclude<ProviderConfig, { kind: "mock" }> };
}

const none = fixedCredentials({});
const email = { id: "7", channel: "email" as const, from: "user@example.com", to: "someone@example.com", body: "hi", attachments: [] };
const options = () => ({ idempotencyKey: "messaging-msg-7", signal: AbortSignal.timeout(5000) });

test("a sendgrid provider is built with the key from the credentials, and sends from the message's own sender", async () => {
  const sendgrid = await startFakeSendGrid({ apiKey: "SG.fake-key", verifiedSenders: ["noreply@example.com"] });
  try {
    const { config, provider } = configWith([{ name: "sg", kind: "sendgrid", from: "noreply@example.com", base_url: sendgrid.baseUrl }], {
      SSRF_ALLOWLIST: "127.0.0.1",
      MESSAGING_EGRESS_ALLOW_HTTP: "true",
    });
    const outcome = await buildProvider(config, provider, 2000, fixedCredentials({ "sg/api_key": "SG.fake-key" })).send({ ...email, from: "noreply@example.com" }, options());
    expect(outcome).toEqual({ kind: "accepted", providerMessageId: sendgrid.messageIds[0]! });
    expect(sendgrid.requests[0]!.headers.authorization).toBe("Bearer SG.fake-key");
  } finally {
    await sendgrid.close();
  }
});

test("an smtp provider checks its relay with the egress guard's address rules: loopback only when listed", async () => {
  const relay = [{ name: "relay", kind: "smtp", host: "127.0.0.1", port: 1, from: "noreply@example.com" }];
  const { config, provider } = configWith(relay, {});
  const outcome = await buildProvider(config, provider, 2000, none).send(email, options());
  expect(outcome).toMatchObject({ kind: "permanent_error", reason: expect.stringContaining("SMTP relay refused") });
  // Listed, the address passes the check and the (closed) port is a connection failure instead: transient.
  const listed = configWith(relay, { SSRF_ALLOWLIST: "127.0.0.1" });
  expect(await buildProvider(listed.config, listed.provider, 2000, none).send(email, options())).toMatchObject({ kind: "transient_error" });
});
