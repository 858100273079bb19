/**
 * The compiled binary with providers in its config file: `serve` refuses a provider without its credential in one
 * line naming the `creds set` to run (or the missing master key), `check` warns when none are configured, and with
 * the credential stored by `creds set` `serve` delivers a sent SMS to the fake Twilio on loopback, then sends with a
 * token rotated by `creds rotate` while it runs, without a restart.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { generateMasterKey } from "../../src/security/keyring.ts";
import { type DeliveryDatabase, deliveryDatabase, deliveryEnv, scrapeMetric, FAKE_TWILIO_SENDER, sendSms, waitUntil, writeFakeTwilioConfig } from "../delivery/binary-fixture.ts";
import { FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, type FakeTwilio, startFakeTwilio } from "../providers/twilio-fake.ts";

const dir = mkdtempSync(join(tmpdir(), "msg-test-provider-binary-"));
let db: DeliveryDatabase;
let fake: FakeTwilio;
// Every request the fake received conforms to Twilio\'s own OpenAPI description (../shared/specs/).
afterEach(() => fake?.assertConformant());
let serve: ServeProcess | undefined;
let configFile: string;
const MASTER_KEY = generateMasterKey("k1");
const env = () => deliveryEnv(db.url, { MESSAGING_MASTER_KEYS: MASTER_KEY });

beforeAll(async () => {
  [db, fake] = await Promise.all([deliveryDatabase(), startFakeTwilio(), ensureBinary()]).then(([d, f]) => [d, f] as const);
  configFile = writeFakeTwilioConfig(dir, fake.baseUrl);
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  await Promise.all([db?.close(), fake?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

test("serve refuses a provider whose credential is not stored, in one line naming it and the command to run", async () => {
  const result = await runBinary(["serve", "--migrate", "--config", configFile], { env: env() });
  expect(result.exitCode).toBe(2);
  expect(result.stderr).toBe(
    "messaging: provider twilio-test (twilio): credential auth_token is not stored (run `messaging creds set twilio-test auth_token --value-file FILE`)\n",
  );
});

test("on PostgreSQL without a master key, serve refuses a provider that needs a credential, in one line", async () => {
  const result = await runBinary(["serve", "--migrate", "--config", configFile], { env: deliveryEnv(db.url) });
  expect(result.exitCode).toBe(2);
  expect(result.stderr).toBe(
    "messaging: provider twilio-test (twilio) needs credential auth_token, but no master key is configured to store or read it (set MESSAGING_MASTER_KEYS or MESSAGING_MASTER_KEYS_FILE)\n",
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

test("serve with the stored credential delivers a sent SMS to the fake Twilio, and sends with a rotated token without a restart", async () => {
  const set = await runBinary(["--config", configFile, "creds", "set", "twilio-test", "auth_token", "--value-file", "-"], {
    env: env(),
    stdin: new TextEncoder().encode(`${FAKE_AUTH_TOKEN}\n`),
  });
  expect(set).toMatchObject({ exitCode: 0, stdout: expect.stringMatching(/^stored twilio-test\/auth_token v1 /) });
  serve = await startServe({ args: ["--config", configFile], env: env() });
  const id = await sendSms(serve.url, FAKE_TWILIO_SENDER);
  expect(id).toBeDefined();
  await waitUntil("the message is sent", async () => (await db.count(`messages WHERE id = ${id} AND status = 'sent'`)) === 1, 15_000);
  const [row] = await db.sql<{ provider: string; provider_message_id: string }[]>`
    SELECT provider, provider_message_id FROM messages WHERE id = ${id!}`;
  expect(fake.sids).toHaveLength(1);
  expect(row).toEqual({ provider: "twilio-test", provider_message_id: fake.sids[0]! });
  expect(await scrapeMetric(serve.url, "messaging_credential_reloads_total")).toBe(1);

  // The account's token is rotated at Twilio, then in the store; the running instance reloads and sends with it.
  const rotated = "rotated-auth-token-fedcba9876543210";
  fake.credentials.set(FAKE_ACCOUNT_SID, rotated);
  const rotate = await runBinary(["--config", configFile, "creds", "rotate", "twilio-test", "auth_token", "--value-file", "-", "--overlap", "1h"], {
    env: env(),
    stdin: new TextEncoder().encode(rotated),
  });
  expect(rotate.exitCode).toBe(0);
  expect(rotate.stdout).toMatch(/^stored twilio-test\/auth_token v2 \(master key k1\); v1 verifies inbound signatures until /);
  await waitUntil("the instance reloads its credentials", async () => (await scrapeMetric(serve!.url, "messaging_credential_reloads_total")) === 2, 10_000);
  const second = await sendSms(serve.url, FAKE_TWILIO_SENDER);
  await waitUntil("the second message is sent", async () => (await db.count(`messages WHERE id = ${second} AND status = 'sent'`)) === 1, 15_000);
  const basic = Buffer.from(`${FAKE_ACCOUNT_SID}:${rotated}`).toString("base64");
  expect(fake.requests.at(-1)!.headers.authorization).toBe(`Basic ${basic}`);
}, 60_000);
