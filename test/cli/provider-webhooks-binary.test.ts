/**
 * End to end through the compiled binary: an SMS sent through the API reaches the fake Twilio with a StatusCallback
 * URL under MESSAGING_PUBLIC_URL; a status callback signed as Twilio signs it (computed here, with the auth token
 * the fake accepts) POSTed to that URL ends the message `delivered`, and one signed with another token is refused.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DeliveryDatabase, deliveryDatabase, deliveryEnv, FAKE_TWILIO_SENDER, sendSms, waitUntil, writeFakeTwilioConfig } from "../delivery/binary-fixture.ts";
import { generateMasterKey } from "../../src/security/keyring.ts";
import { ensureBinary, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { freePort } from "../helpers/ports.ts";
import { FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, type FakeTwilio, startFakeTwilio } from "../providers/twilio-fake.ts";

const dir = mkdtempSync(join(tmpdir(), "msg-test-provider-webhooks-binary-"));
let db: DeliveryDatabase;
let fake: FakeTwilio;
// Every request the fake received conforms to Twilio\'s own OpenAPI description (../shared/specs/).
afterEach(() => fake?.assertConformant());
let serve: ServeProcess | undefined;

/** Twilio's recipe, written here independently of the service: base64 HMAC-SHA1 of URL + sorted name/value pairs. */
function twilioSign(token: string, url: string, params: Record<string, string>): string {
  const data = url + Object.keys(params).sort().map((name) => name + params[name]).join("");
  return createHmac("sha1", token).update(data, "utf8").digest("base64");
}

beforeAll(async () => {
  [db, fake] = await Promise.all([deliveryDatabase(), startFakeTwilio(), ensureBinary()]).then(([d, f]) => [d, f] as const);
  const configFile = writeFakeTwilioConfig(dir, fake.baseUrl);
  const port = await freePort();
  const env = deliveryEnv(db.url, { PORT: String(port), MESSAGING_PUBLIC_URL: `http://127.0.0.1:${port}`, MESSAGING_MASTER_KEYS: generateMasterKey("k1") });
  expect((await runBinary(["migrate", "up"], { env })).exitCode).toBe(0);
  const set = await runBinary(["--config", configFile, "creds", "set", "twilio-test", "auth_token", "--value-file", "-"], {
    env,
    stdin: new TextEncoder().encode(`${FAKE_AUTH_TOKEN}\n`),
  });
  expect(set).toMatchObject({ exitCode: 0, stderr: "" });
  serve = await startServe({ args: ["--config", configFile], env });
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  await Promise.all([db?.close(), fake?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

test("a sent SMS ends delivered once its signed status callback reaches the StatusCallback URL", async () => {
  const id = await sendSms(serve!.url, FAKE_TWILIO_SENDER);
  expect(id).toBeDefined();
  await waitUntil("the fake Twilio created the message", async () => fake.sids.length === 1, 15_000);
  const created = fake.requests.find((r) => r.path.endsWith("/Messages.json"))!;
  const callbackUrl = created.form.find(([name]) => name === "StatusCallback")?.[1];
  expect(callbackUrl).toBe(`${serve!.url}/api/webhooks/twilio/twilio-test/status`);
  await waitUntil("the message is sent", async () => (await db.count(`messages WHERE id = ${id} AND status = 'sent'`)) === 1, 15_000);

  const params = { MessageSid: fake.sids[0]!, MessageStatus: "delivered", AccountSid: FAKE_ACCOUNT_SID, From: "+15005550006", To: "+13030000012", ErrorCode: "" };
  const post = (token: string) =>
    fetch(callbackUrl!, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": twilioSign(token, callbackUrl!, params) },
      body: new URLSearchParams(params).toString(),
    });

  const forged = await post("someone-elses-token");
  expect(forged.status).toBe(401);
  expect(((await forged.json()) as { code: string }).code).toBe("unauthorized");
  expect(((await (await fetch(`${serve!.url}/api/messages/${id}`)).json()) as { status: string }).status).toBe("sent");

  const genuine = await post(FAKE_AUTH_TOKEN);
  expect(genuine.status).toBe(204);
  const message = (await (await fetch(`${serve!.url}/api/messages/${id}`)).json()) as { status: string };
  expect(message.status).toBe("delivered");
}, 60_000);
