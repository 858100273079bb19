/**
 * The compiled binary with providers in its config file: `serve` refuses a provider without its secret in one
 * line before touching the database, `check` warns when none are configured, and with the secret `serve`
 * delivers a sent SMS to the fake Twilio on loopback.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { type DeliveryDatabase, deliveryDatabase, deliveryEnv, sendSms, waitUntil } from "../delivery/binary-fixture.ts";
import { FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, type FakeTwilio, startFakeTwilio } from "../providers/twilio-fake.ts";

const dir = mkdtempSync(join(tmpdir(), "msg-test-provider-binary-"));
let db: DeliveryDatabase;
let fake: FakeTwilio;
let serve: ServeProcess | undefined;
let configFile: string;

beforeAll(async () => {
  [db, fake] = await Promise.all([deliveryDatabase(), startFakeTwilio(), ensureBinary()]).then(([d, f]) => [d, f] as const);
  configFile = join(dir, "messaging.toml");
  writeFileSync(
    configFile,
    [
      `ssrf_allowlist = ["127.0.0.1"]`,
      `egress_allow_http = true`,
      `[[providers]]`,
      `name = "twilio-test"`,
      `kind = "twilio"`,
      `account_sid = "${FAKE_ACCOUNT_SID}"`,
      `from = "+15005550006"`,
      `base_url = "${fake.baseUrl}"`,
      `[[providers]]`,
      `name = "outbox"`,
      `kind = "mock"`,
      `[routes]`,
      `sms = ["twilio-test"]`,
      `mms = ["twilio-test"]`,
      `email = ["outbox"]`,
    ].join("\n"),
  );
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  await Promise.all([db?.close(), fake?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

test("serve refuses a provider whose secret is missing, in one line naming it and the variable", async () => {
  const result = await runBinary(["serve", "--config", configFile], { env: deliveryEnv(db.url) });
  expect(result.exitCode).toBe(2);
  expect(result.stderr).toBe(
    "messaging: provider twilio-test (twilio): secret auth_token is missing (set MESSAGING_PROVIDER_TWILIO_TEST_AUTH_TOKEN)\n",
  );
});

test("check warns that nothing leaves the machine when no providers are configured", async () => {
  const result = await runBinary(["check", "--json"], { env: deliveryEnv(db.url) });
  const results = JSON.parse(result.stdout) as { check: string; status: string; message: string }[];
  expect(results.find((c) => c.check === "providers")).toEqual({
    check: "providers",
    status: "warn",
    message: "no providers are configured: every channel uses the built-in mock and nothing leaves this machine",
  });
});

test("serve with the secret delivers a sent SMS to the fake Twilio, ending sent with its sid", async () => {
  serve = await startServe({
    args: ["--migrate", "--config", configFile],
    env: deliveryEnv(db.url, { MESSAGING_PROVIDER_TWILIO_TEST_AUTH_TOKEN: FAKE_AUTH_TOKEN }),
  });
  const id = await sendSms(serve.url);
  expect(id).toBeDefined();
  await waitUntil("the message is sent", async () => (await db.count(`messages WHERE id = ${id} AND status = 'sent'`)) === 1, 15_000);
  const [row] = await db.sql<{ provider: string; provider_message_id: string }[]>`
    SELECT provider, provider_message_id FROM messages WHERE id = ${id!}`;
  expect(fake.sids).toHaveLength(1);
  expect(row).toEqual({ provider: "twilio-test", provider_message_id: fake.sids[0]! });
}, 60_000);
