/**
 * A provider credential's plain value, looked for everywhere a run leaves text: the compiled binary stores a Twilio
 * token with `creds set`, `serve` (LOG_LEVEL=debug) sends with it to the fake Twilio, the token is rotated under
 * the running instance and a send is refused with the new one (an attempt with Twilio's error is stored), the
 * master key is rotated, `check` and `creds list` run. Then every row of every table (all columns as text) and
 * every line every command wrote are searched for the values and for the Basic credentials made of them.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateMasterKey } from "../../src/security/keyring.ts";
import { type DeliveryDatabase, deliveryDatabase, deliveryEnv, scrapeMetric, FAKE_TWILIO_SENDER, sendSms, waitUntil, writeFakeTwilioConfig } from "../delivery/binary-fixture.ts";
import { ensureBinary, killAll, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { FAKE_ACCOUNT_SID, type FakeTwilio, startFakeTwilio } from "../providers/twilio-fake.ts";

const FIRST = `leak-probe-first-${crypto.randomUUID()}`;
const SECOND = `leak-probe-second-${crypto.randomUUID()}`;
const K1 = generateMasterKey("k1");
const K2 = generateMasterKey("k2");
const dir = mkdtempSync(join(tmpdir(), "msg-test-credential-leaks-"));
const written: { what: string; text: string }[] = [];
let db: DeliveryDatabase;
let fake: FakeTwilio;
// Every request the fake received conforms to Twilio\'s own OpenAPI description (../shared/specs/).
afterEach(() => fake?.assertConformant());
let serve: ServeProcess | undefined;
let configFile: string;

beforeAll(async () => {
  [db, fake] = await Promise.all([deliveryDatabase(), startFakeTwilio(), ensureBinary()]).then(([d, f]) => [d, f] as const);
  fake.credentials.set(FAKE_ACCOUNT_SID, FIRST);
  configFile = writeFakeTwilioConfig(dir, fake.baseUrl);
}, 120_000);
afterAll(async () => {
  if (serve) killAll([serve]);
  await Promise.all([db?.close(), fake?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the binary with the run's settings and keeps what it wrote. */
async function run(args: string[], keys: string, stdin?: string) {
  const result = await runBinary(["--config", configFile, ...args], {
    env: deliveryEnv(db.url, { MESSAGING_MASTER_KEYS: keys, LOG_LEVEL: "debug" }),
    ...(stdin === undefined ? {} : { stdin: new TextEncoder().encode(stdin) }),
  });
  written.push({ what: `${args.join(" ")} stdout`, text: result.stdout }, { what: `${args.join(" ")} stderr`, text: result.stderr });
  return result;
}

test("no table row and no output line of a whole run holds a credential's value", async () => {
  expect((await run(["migrate", "up"], K1)).exitCode).toBe(0);
  expect((await run(["creds", "set", "twilio-test", "auth_token", "--value-file", "-"], K1, `${FIRST}\n`)).exitCode).toBe(0);
  serve = await startServe({ args: ["--config", configFile], env: deliveryEnv(db.url, { MESSAGING_MASTER_KEYS: K1, LOG_LEVEL: "debug" }) });

  const sent = await sendSms(serve.url, FAKE_TWILIO_SENDER);
  await waitUntil("the first message is sent", async () => (await db.count(`messages WHERE id = ${sent} AND status = 'sent'`)) === 1, 15_000);

  // Rotated in the store but not at the fake: the next send is refused by Twilio (401, code 20003) and recorded.
  expect((await run(["creds", "rotate", "twilio-test", "auth_token", "--value-file", "-", "--overlap", "1h"], K1, SECOND)).exitCode).toBe(0);
  await waitUntil("the instance reloads", async () => (await scrapeMetric(serve!.url, "messaging_credential_reloads_total")) === 2, 10_000);
  const refused = await sendSms(serve.url, FAKE_TWILIO_SENDER);
  await waitUntil("the second message fails", async () => (await db.count(`messages WHERE id = ${refused} AND status = 'failed'`)) === 1, 15_000);

  expect((await run(["creds", "rotate"], `${K2},${K1}`)).stdout).toBe("re-encrypted 2 of 2 credential version(s) under master key k2\n");
  await waitUntil("the instance reloads again", async () => (await scrapeMetric(serve!.url, "messaging_credential_reloads_total")) === 3, 10_000);
  expect((await run(["check", "--json"], K2)).exitCode).toBe(0);
  expect((await run(["creds", "list"], K2)).exitCode).toBe(0);
  expect((await run(["creds", "list", "--json"], K2)).exitCode).toBe(0);
  expect(await serve.stop()).toBe(0);
  written.push({ what: "serve stdout", text: serve.stdout() }, { what: "serve stderr", text: serve.stderr() });

  // The values were really used: the fake saw the first as Basic credentials and refused the second.
  const basic = (token: string) => Buffer.from(`${FAKE_ACCOUNT_SID}:${token}`).toString("base64");
  expect(fake.requests.map((r) => r.headers.authorization)).toEqual([`Basic ${basic(FIRST)}`, `Basic ${basic(SECOND)}`]);
  const forbidden = [FIRST, SECOND, basic(FIRST), basic(SECOND), Buffer.from(FIRST).toString("base64"), Buffer.from(SECOND).toString("base64")];

  const tables = await db.sql<{ name: string }[]>`
    SELECT table_schema || '.' || table_name AS name FROM information_schema.tables
     WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'`;
  expect(tables.map((t) => t.name)).toContain("public.provider_credentials");
  let rows = 0;
  for (const { name } of tables) {
    const [schema, table] = name.split(".") as [string, string];
    const texts = await db.sql.unsafe<{ row: string }[]>(`SELECT t::text AS row FROM "${schema}"."${table}" t`);
    rows += texts.length;
    for (const { row } of texts) for (const value of forbidden) expect(`${name}: ${row}`).not.toContain(value);
  }
  expect(rows).toBeGreaterThan(4); // messages, attempts, credentials, migrations: the scan read real rows
  const [attempt] = await db.sql<{ error: string }[]>`SELECT error FROM delivery_attempts WHERE message_id = ${refused!} ORDER BY id DESC LIMIT 1`;
  expect(attempt!.error).toContain("20003");

  const lines = written.flatMap(({ what, text }) => text.split("\n").map((line) => `${what}: ${line}`));
  expect(lines.some((line) => line.includes("provider credentials loaded"))).toBe(true);
  for (const line of lines) for (const value of forbidden) expect(line).not.toContain(value);
}, 120_000);
