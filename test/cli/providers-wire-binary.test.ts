/**
 * Issue 16, through the compiled binary and the fakes: what the API stored is what the provider receives. One
 * `serve` on PostgreSQL routes sms/mms to a fake Twilio (senders +15005550006 and +15005550007) and email to a fake
 * SendGrid (senders `Example <noreply@example.com>` and `@example.org`) and then a real SMTP server (smtp-server,
 * senders `@relay.example`), with a loopback file server for attachments. Both fakes check every request against
 * the providers' own OpenAPI descriptions (../shared/specs/), and the test fails on any violation.
 */
import { validationCounts } from "../helpers/openapi.ts";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";
import { ensureBinary, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { generateMasterKey } from "../../src/security/keyring.ts";
import { type DeliveryDatabase, deliveryDatabase, deliveryEnv, scrapeMetric, waitUntil } from "../delivery/binary-fixture.ts";
import { type FakeSendGrid, startFakeSendGrid } from "../providers/sendgrid-fake.ts";
import { FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, type FakeTwilio, startFakeTwilio } from "../providers/twilio-fake.ts";

const dir = mkdtempSync(join(tmpdir(), "msg-test-provider-wire-"));
const MASTER_KEY = generateMasterKey("k1");
const SG_KEY = "SG.wire-test-key";
const OWNED = "+15005550006";
const OTHER_OWNED = "+15005550007";
let db: DeliveryDatabase;
let twilio: FakeTwilio;
let sendgrid: FakeSendGrid;
let serve: ServeProcess;
let smtp: { port: number; received: { mailFrom: string; raw: string }[]; close(): Promise<void> };
let files: ReturnType<typeof Bun.serve>;
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 250]);

async function startSmtp(): Promise<typeof smtp> {
  const received: { mailFrom: string; raw: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const from = session.envelope.mailFrom;
        received.push({ mailFrom: from ? from.address : "", raw: Buffer.concat(chunks).toString("utf8") });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.server.address() as AddressInfo).port, received, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const post = async (path: string, body: Record<string, unknown>) => {
  const res = await fetch(`${serve.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
};
const TS = "2026-11-01T10:00:00Z";
const sms = (fields: Record<string, unknown>) => post("/api/messages/sms", { from: OWNED, to: "+14155550100", type: "sms", body: "hello", attachments: null, timestamp: TS, ...fields });
const email = (fields: Record<string, unknown>) => post("/api/messages/email", { from: "noreply@example.com", to: "someone@example.net", body: "hello", attachments: null, timestamp: TS, ...fields });
const statusOf = async (id: unknown) => (await db.sql<{ status: string; reason: string | null }[]>`SELECT status, status_reason AS reason FROM messages WHERE id = ${String(id)}`)[0];
const until = (id: unknown, status: string) => waitUntil(`message ${id} ${status}`, async () => (await statusOf(id))?.status === status, 15_000);

beforeAll(async () => {
  await ensureBinary();
  [db, twilio, sendgrid, smtp] = await Promise.all([
    deliveryDatabase(),
    startFakeTwilio(),
    startFakeSendGrid({ apiKey: SG_KEY, verifiedSenders: ["noreply@example.com", "news@example.org"] }),
    startSmtp(),
  ]);
  files = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req) => (new URL(req.url).pathname === "/pics/cat.png" ? new Response(PNG, { headers: { "content-type": "image/png" } }) : new Response("no", { status: 404 })),
  });
  const config = join(dir, "messaging.toml");
  writeFileSync(
    config,
    [
      `ssrf_allowlist = ["127.0.0.1"]`,
      `egress_allow_http = true`,
      `max_attachments = 20`,
      `attachment_ports = [${files.port}]`,
      `[[providers]]`,
      `name = "twilio-test"`,
      `kind = "twilio"`,
      `account_sid = "${FAKE_ACCOUNT_SID}"`,
      `senders = ["${OWNED}", "+1 500 555 0007"]`,
      `base_url = "${twilio.baseUrl}"`,
      `[[providers]]`,
      `name = "sg"`,
      `kind = "sendgrid"`,
      `senders = ["Example <noreply@example.com>", "@example.org"]`,
      `base_url = "${sendgrid.baseUrl}"`,
      `[[providers]]`,
      `name = "relay"`,
      `kind = "smtp"`,
      `host = "127.0.0.1"`,
      `port = ${smtp.port}`,
      `senders = ["@relay.example"]`,
      `[routes]`,
      `sms = ["twilio-test"]`,
      `mms = ["twilio-test"]`,
      `email = ["sg", "relay"]`,
    ].join("\n"),
  );
  const env = deliveryEnv(db.url, { MESSAGING_MASTER_KEYS: MASTER_KEY, MESSAGING_EGRESS_ALLOW_HTTP: "true" });
  expect((await runBinary(["migrate", "up"], { env })).exitCode).toBe(0);
  for (const [provider, name, value] of [["twilio-test", "auth_token", FAKE_AUTH_TOKEN], ["sg", "api_key", SG_KEY]] as const) {
    const set = await runBinary(["creds", "set", provider, name, "--value-file", "-", "--config", config], { env, stdin: new TextEncoder().encode(value) });
    expect(set.exitCode).toBe(0);
  }
  serve = await startServe({ args: ["--config", config], env });
}, 120_000);

afterAll(() => console.log(`[openapi] requests checked against the providers' descriptions so far: ${JSON.stringify(validationCounts)}`));
afterAll(async () => {
  await serve?.stop();
  files?.stop(true);
  await Promise.all([db?.close(), twilio?.close(), sendgrid?.close(), smtp?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

afterEach(() => {
  // Every request the fakes received conforms to the providers' own descriptions (or the reason is printed).
  if (twilio.unchecked !== undefined) console.log(`[wire] ${twilio.unchecked}`);
  if (sendgrid.unchecked !== undefined) console.log(`[wire] ${sendgrid.unchecked}`);
  twilio.assertConformant();
  sendgrid.assertConformant();
});

describe("SMS: the stored sender and recipient, in E.164", () => {
  test("To written with spaces, dots and parentheses goes out in E.164, From is the API's own from", async () => {
    const res = await sms({ from: "+1 500.555.0007", to: "+1 (555) 777-0004" });
    expect(res.status).toBe(202);
    await until(res.json.id, "sent");
    const form = Object.fromEntries(twilio.requests.at(-1)!.form);
    expect(form).toMatchObject({ To: "+15557770004", From: OTHER_OWNED, Body: "hello" });
  });

  test("a from no provider of the route owns is 422 sender_not_allowed naming the route, and nothing is stored", async () => {
    const before = await db.count("messages");
    const res = await sms({ from: "+15550009999" });
    expect(res.status).toBe(422);
    expect(res.json).toMatchObject({ code: "sender_not_allowed", message: expect.stringContaining("sms route (twilio-test)") });
    expect(await db.count("messages")).toBe(before);
  });

  test("11 media are refused at accept time (Twilio takes at most 10), naming the limit", async () => {
    const media = Array.from({ length: 11 }, (_, i) => `https://cdn.example.com/${i}.png`);
    const res = await sms({ type: "mms", attachments: media });
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ code: "validation_failed", details: [{ path: "attachments", message: expect.stringContaining("at most 10") }] });
  });

  test("after a STOP to the real number, a send from it is refused; another owned number still sends, from itself", async () => {
    const person = "+14155550199";
    const stop = await post("/api/webhooks/sms", { from: person, to: OWNED, type: "sms", messaging_provider_id: "SMstop1", body: "STOP", attachments: null, timestamp: TS });
    expect(stop.status).toBeLessThan(300);
    const refused = await sms({ to: person });
    expect(refused.status).toBe(422);
    expect(refused.json.code).toBe("recipient_opted_out");
    const other = await sms({ from: OTHER_OWNED, to: person });
    expect(other.status).toBe(202);
    await until(other.json.id, "sent");
    expect(Object.fromEntries(twilio.requests.at(-1)!.form)).toMatchObject({ To: person, From: OTHER_OWNED });
  });
});

describe("email: sender with its name, acceptance without an id, attachments, subject", () => {
  test("Name <address> on SendGrid: from.name and from.email", async () => {
    const res = await email({ from: "Example Team <noreply@example.com>", subject: "Hi" });
    expect(res.status).toBe(202);
    await until(res.json.id, "sent");
    expect(JSON.parse(sendgrid.requests.at(-1)!.body).from).toEqual({ email: "noreply@example.com", name: "Example Team" });
  });

  test("a 202 without X-Message-Id is sent after exactly one POST, and counted as unmatchable", async () => {
    const before = sendgrid.requests.length;
    sendgrid.script({ kind: "garbage", status: 202, body: "" });
    const res = await email({ subject: "once" });
    await until(res.json.id, "sent");
    await Bun.sleep(500);
    expect(sendgrid.requests.length - before).toBe(1);
    expect(await scrapeMetric(serve.url, "messaging_delivery_unmatchable_acceptances_total")).toBe(1);
  });

  test("an attachment from a loopback file server arrives as base64 content with its type and name", async () => {
    const res = await email({ from: "news@example.org", attachments: [`http://127.0.0.1:${files.port}/pics/cat.png`], subject: "pic" });
    expect(res.status).toBe(202);
    await until(res.json.id, "sent");
    expect(JSON.parse(sendgrid.requests.at(-1)!.body).attachments).toEqual([
      { content: Buffer.from(PNG).toString("base64"), type: "image/png", filename: "cat.png", disposition: "attachment" },
    ]);
  });

  test("an attachment that is not there fails the message with that reason, never sent", async () => {
    const before = sendgrid.requests.length;
    const res = await email({ attachments: [`http://127.0.0.1:${files.port}/pics/missing.png`] });
    await until(res.json.id, "failed");
    expect((await statusOf(res.json.id))!.reason).toContain("attachment 1: fetching it answered 404");
    expect(sendgrid.requests.length).toBe(before);
  });

  test("an HTML email without subject gets its text as subject, and a text part before the HTML", async () => {
    const res = await email({ body: "<p>HTML body, <b>no subject</b> given</p>" });
    await until(res.json.id, "sent");
    const sent = JSON.parse(sendgrid.requests.at(-1)!.body);
    expect(sent.subject).toBe("HTML body, no subject given");
    expect(sent.content).toEqual([{ type: "text/plain", value: "HTML body, no subject given" }, { type: "text/html", value: "<p>HTML body, <b>no subject</b> given</p>" }]);
  });

  test("Name <address> on SMTP: the relay that owns the sender (the chain skips SendGrid), headers as received", async () => {
    const before = sendgrid.requests.length;
    const res = await email({ from: "Relay Bot <bot@relay.example>", subject: "via smtp", attachments: [`http://127.0.0.1:${files.port}/pics/cat.png`] });
    expect(res.status).toBe(202);
    await until(res.json.id, "sent");
    expect(sendgrid.requests.length).toBe(before);
    const mail = smtp.received.at(-1)!;
    expect(mail.mailFrom).toBe("bot@relay.example");
    expect(mail.raw).toMatch(/^From: Relay Bot <bot@relay\.example>\r$/m);
    expect(mail.raw).toContain("Content-Type: image/png; name=cat.png");
    expect(mail.raw).toContain(Buffer.from(PNG).toString("base64"));
  });

  test("a from no email provider owns is 422 sender_not_allowed", async () => {
    const res = await email({ from: "Someone <someone@elsewhere.example>" });
    expect(res.status).toBe(422);
    expect(res.json).toMatchObject({ code: "sender_not_allowed", message: expect.stringContaining("email route (sg, relay)") });
  });
});

test("check refuses a sender it cannot parse, in one line", async () => {
  const bad = join(dir, "bad.toml");
  writeFileSync(bad, [`[[providers]]`, `name = "sg"`, `kind = "sendgrid"`, `senders = ["Example <noreply>"]`].join("\n"));
  const result = await runBinary(["check", "--config", bad], { env: deliveryEnv(db.url) });
  expect(result.exitCode).toBe(2);
  expect(result.stderr).toContain('provider sg (sendgrid): senders: "Example <noreply>" is not an email sender');
});
