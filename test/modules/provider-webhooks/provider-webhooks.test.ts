/**
 * The Twilio and SendGrid webhook routes (src/modules/provider-webhooks), through the whole app on PostgreSQL.
 * Every signature here is computed by the test itself, with node:crypto and the providers' documented recipes,
 * never with the service's own signing code; the Twilio recipe is first checked against the worked example of
 * Twilio's webhook-security page.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import type { ProviderConfig } from "../../../src/providers/config.ts";
import { EVENT_ID_RETENTION_HOURS, scheduleProviderEventPurge } from "../../../src/modules/provider-webhooks/service.ts";
import type { CredentialLookup } from "../../../src/security/credential-lookup.ts";
import { fixedCredentials } from "../../../src/security/credential-lookup.ts";
import { createFirstApiKey } from "../../../src/security/api-keys.ts";
import { CredentialError } from "../../../src/security/keyring.ts";
import { afterResponse, buildTestApp, request, type TestApp } from "../../helpers/app.ts";

const PUBLIC_URL = "https://messaging.example.com";
const TOKEN = "twilio-auth-token-current-0001";
const OLD_TOKEN = "twilio-auth-token-previous-0000";
const PARSE_PASSWORD = "parse-password-current";
const OLD_PARSE_PASSWORD = "parse-password-previous";

const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const VERIFICATION_KEY = publicKey.export({ format: "der", type: "spki" }).toString("base64");
const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" });

const PROVIDERS: ProviderConfig[] = [
  { name: "twilio-main", kind: "twilio", channels: ["sms", "mms"], accountSid: `AC${"0".repeat(32)}`, senders: [{ kind: "phone", number: "+15005550006" }] },
  { name: "sendgrid-main", kind: "sendgrid", channels: ["email"], senders: [{ kind: "email", address: "noreply@example.com" }], eventVerificationKey: VERIFICATION_KEY },
];

/** Twilio's recipe: base64 HMAC-SHA1, keyed with the auth token, of the URL followed by each name and value, sorted by name. */
function twilioSign(token: string, url: string, params: Record<string, string>): string {
  const data = url + Object.keys(params).sort().map((name) => name + params[name]).join("");
  return createHmac("sha1", token).update(data, "utf8").digest("base64");
}

/** SendGrid's recipe: ECDSA P-256 over SHA-256 of the timestamp text followed by the raw body, DER, base64. */
function sendgridSign(key: KeyObject, timestamp: string, body: string): string {
  return sign("sha256", Buffer.from(timestamp + body, "utf8"), key).toString("base64");
}

const form = (params: Record<string, string>) => new URLSearchParams(params).toString();
const FORM_TYPE = { "content-type": "application/x-www-form-urlencoded" };

let t: TestApp;
/** Auth on and our own webhook signature required, credentials in a rotation's overlap, a short body deadline. */
let rotating: TestApp;
let rotatingKey: string;

/** Set by a test: the stored values no longer decrypt (a master key removed too early). */
let undecryptable = false;

/** Both the current and the previous value verify, as during a rotation's overlap. */
const overlapping: CredentialLookup = {
  current: (provider, name) => (name === "auth_token" ? TOKEN : name === "parse_password" ? PARSE_PASSWORD : undefined),
  verifying: (provider, name) => {
    if (undecryptable) throw new CredentialError({ provider, name, version: 2 }, "unknown_key_id", "encrypted under master key k0, which is not configured");
    return provider === "twilio-main" && name === "auth_token"
      ? [TOKEN, OLD_TOKEN]
      : provider === "sendgrid-main" && name === "parse_password"
        ? [PARSE_PASSWORD, OLD_PARSE_PASSWORD]
        : [];
  },
};

beforeAll(async () => {
  const credentials = fixedCredentials({ "twilio-main/auth_token": TOKEN, "sendgrid-main/parse_password": PARSE_PASSWORD });
  [t, rotating] = await Promise.all([
    buildTestApp({ config: { publicUrl: PUBLIC_URL, providers: PROVIDERS }, credentials }),
    buildTestApp({
      config: { publicUrl: PUBLIC_URL, providers: PROVIDERS, auth: "on", webhookSecrets: ["our-own-webhook-secret"], requestBodyTimeoutMs: 300 },
      credentials: overlapping,
    }),
  ]);
  rotatingKey = (await createFirstApiKey(rotating.database.sql))!.key;
}, 60_000);

afterAll(async () => {
  await Promise.all([t?.close(), rotating?.close()]);
});

/** A sent outbound message with this provider id, as the dispatcher leaves it after the provider accepted it. */
async function sentMessage(app: TestApp, providerMessageId: string, channel: "sms" | "email" = "sms"): Promise<string> {
  const body =
    channel === "sms"
      ? { from: "+15005550006", to: "+14155550100", type: "sms", body: "hello", attachments: null, timestamp: "2026-11-01T10:00:00Z" }
      : { from: "noreply@example.com", to: "someone@example.org", body: "hello", attachments: null, timestamp: "2026-11-01T10:00:00Z" };
  const headers: Record<string, string> = app === rotating ? { authorization: `Bearer ${rotatingKey}` } : {};
  const res = await request(app.app, "POST", `/api/messages/${channel}`, { body, headers });
  expect(res.status).toBe(202);
  const id = res.json.id as string;
  await app.database.sql.query("UPDATE messages SET status = 'sent', provider_message_id = $2 WHERE id = $1", [id, providerMessageId]);
  return id;
}

async function messageRow(app: TestApp, id: string) {
  const [row] = await app.database.sql.query<{ status: string; status_reason: string | null }>(
    "SELECT status, status_reason FROM messages WHERE id = $1",
    [id],
  );
  return row!;
}

const count = async (app: TestApp, from: string, params: unknown[] = []) =>
  (await app.database.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${from}`, params))[0]!.n;

async function webhookCount(app: TestApp, labels: { provider: string; kind: string; outcome: string }): Promise<number> {
  await afterResponse();
  const metric = await app.metrics.providerWebhooks.get();
  return metric.values.find((v) => v.labels.provider === labels.provider && v.labels.kind === labels.kind && v.labels.outcome === labels.outcome)?.value ?? 0;
}

/** POSTs a Twilio webhook signed for the public URL of its path (or `sign` overrides). */
function postTwilio(app: TestApp, path: string, params: Record<string, string>, opts: { token?: string; url?: string; signature?: string | null } = {}) {
  const signature = opts.signature === undefined ? twilioSign(opts.token ?? TOKEN, opts.url ?? PUBLIC_URL + path, params) : opts.signature;
  return request(app.app, "POST", path, { headers: { ...FORM_TYPE, ...(signature === null ? {} : { "x-twilio-signature": signature }) }, body: form(params) });
}

const STATUS_PATH = "/api/webhooks/twilio/twilio-main/status";
const INBOUND_PATH = "/api/webhooks/twilio/twilio-main/inbound";
const sid = () => `SM${crypto.randomUUID().replaceAll("-", "")}`;

describe("the test's Twilio signer", () => {
  test("reproduces the worked example of Twilio's webhook-security page", () => {
    // Auth token 12345, the page's URL and five parameters (as quoted from the page; see test/security/twilio-signature.test.ts).
    const params = { CallSid: "CA1234567890ABCDE", Caller: "+12349013030", Digits: "1234", From: "+12349013030", To: "+18005551212" };
    expect(twilioSign("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params)).toBe("0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
  });
});

describe("POST /api/webhooks/twilio/{provider}/status", () => {
  test("a signed delivered callback marks the message delivered and answers 204", async () => {
    const messageSid = sid();
    const id = await sentMessage(t, messageSid);
    const before = await webhookCount(t, { provider: "twilio-main", kind: "twilio_status", outcome: "accepted" });
    const res = await postTwilio(t, STATUS_PATH, { MessageSid: messageSid, MessageStatus: "delivered", AccountSid: `AC${"0".repeat(32)}`, ErrorCode: "" });
    expect(res.status).toBe(204);
    expect(res.text).toBe("");
    expect(await messageRow(t, id)).toEqual({ status: "delivered", status_reason: null });
    expect(await webhookCount(t, { provider: "twilio-main", kind: "twilio_status", outcome: "accepted" })).toBe(before + 1);
  });

  test("a repeated or late callback changes nothing and is still answered 204", async () => {
    const messageSid = sid();
    const id = await sentMessage(t, messageSid);
    expect((await postTwilio(t, STATUS_PATH, { MessageSid: messageSid, MessageStatus: "delivered" })).status).toBe(204);
    const before = await webhookCount(t, { provider: "twilio-main", kind: "twilio_status", outcome: "duplicate" });
    expect((await postTwilio(t, STATUS_PATH, { MessageSid: messageSid, MessageStatus: "delivered" })).status).toBe(204);
    expect((await postTwilio(t, STATUS_PATH, { MessageSid: messageSid, MessageStatus: "sent" })).status).toBe(204);
    expect((await messageRow(t, id)).status).toBe("delivered");
    expect(await webhookCount(t, { provider: "twilio-main", kind: "twilio_status", outcome: "duplicate" })).toBe(before + 2);
  });

  test("undelivered keeps Twilio's ErrorCode as the reason", async () => {
    const messageSid = sid();
    const id = await sentMessage(t, messageSid);
    expect((await postTwilio(t, STATUS_PATH, { MessageSid: messageSid, MessageStatus: "undelivered", ErrorCode: "30003" })).status).toBe(204);
    expect(await messageRow(t, id)).toEqual({ status: "undelivered", status_reason: "twilio 30003" });
  });

  test("statuses that report no delivery (queued, sending) and unknown sids change nothing", async () => {
    const messageSid = sid();
    const id = await sentMessage(t, messageSid);
    for (const status of ["queued", "sending", "accepted"]) {
      expect((await postTwilio(t, STATUS_PATH, { MessageSid: messageSid, MessageStatus: status })).status).toBe(204);
    }
    expect((await messageRow(t, id)).status).toBe("sent");
    const before = await webhookCount(t, { provider: "twilio-main", kind: "twilio_status", outcome: "unmatched" });
    expect((await postTwilio(t, STATUS_PATH, { MessageSid: sid(), MessageStatus: "delivered" })).status).toBe(204);
    expect(await webhookCount(t, { provider: "twilio-main", kind: "twilio_status", outcome: "unmatched" })).toBe(before + 1);
  });

  test("a report that overtakes the write of the sid it names is applied once the sid is stored", async () => {
    const messageSid = sid();
    const id = await sentMessage(t, sid());
    expect((await postTwilio(t, STATUS_PATH, { MessageSid: messageSid, MessageStatus: "delivered" })).status).toBe(204);
    expect((await messageRow(t, id)).status).toBe("sent");
    // The dispatcher writes the provider's answer now.
    await t.database.sql.query("UPDATE messages SET provider_message_id = $2 WHERE id = $1", [id, messageSid]);
    const deadline = Date.now() + 20_000;
    while ((await messageRow(t, id)).status !== "delivered" && Date.now() < deadline) await Bun.sleep(100);
    expect((await messageRow(t, id)).status).toBe("delivered");
  });

  test("a missing, wrong or differently addressed signature is 401 in the error envelope and changes nothing", async () => {
    const messageSid = sid();
    const id = await sentMessage(t, messageSid);
    const params = { MessageSid: messageSid, MessageStatus: "delivered" };
    const before = await webhookCount(t, { provider: "twilio-main", kind: "twilio_status", outcome: "unauthorized" });
    const attempts = [
      await postTwilio(t, STATUS_PATH, params, { signature: null }),
      await postTwilio(t, STATUS_PATH, params, { token: "not-the-token" }),
      // Signed for the URL the request reached, not the public URL Twilio was given.
      await postTwilio(t, STATUS_PATH, params, { url: `http://localhost${STATUS_PATH}` }),
      await postTwilio(t, STATUS_PATH, params, { signature: twilioSign(TOKEN, PUBLIC_URL + STATUS_PATH, { ...params, MessageStatus: "failed" }) }),
    ];
    for (const res of attempts) {
      expect(res.status).toBe(401);
      expect(res.json).toMatchObject({ code: "unauthorized", message: "missing or invalid X-Twilio-Signature" });
      expect(typeof res.json.request_id).toBe("string");
    }
    expect((await messageRow(t, id)).status).toBe("sent");
    expect(await webhookCount(t, { provider: "twilio-main", kind: "twilio_status", outcome: "unauthorized" })).toBe(before + 4);
  });

  test("the public URL may be signed with or without its default port, as Twilio's own libraries accept", async () => {
    const messageSid = sid();
    const id = await sentMessage(t, messageSid);
    const res = await postTwilio(t, STATUS_PATH, { MessageSid: messageSid, MessageStatus: "delivered" }, { url: `https://messaging.example.com:443${STATUS_PATH}` });
    expect(res.status).toBe(204);
    expect((await messageRow(t, id)).status).toBe("delivered");
  });

  test("the query string is part of the signed URL", async () => {
    const messageSid = sid();
    const id = await sentMessage(t, messageSid);
    const path = `${STATUS_PATH}?tag=a%20b`;
    const params = { MessageSid: messageSid, MessageStatus: "delivered" };
    expect((await postTwilio(t, path, params, { url: PUBLIC_URL + STATUS_PATH })).status).toBe(401);
    expect((await postTwilio(t, path, params)).status).toBe(204);
    expect((await messageRow(t, id)).status).toBe("delivered");
  });

  test("a signed body without MessageSid is a 400 naming the field", async () => {
    const res = await postTwilio(t, STATUS_PATH, { MessageStatus: "delivered" });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    expect(res.json.details).toEqual([{ path: "MessageSid", message: "is required" }]);
  });

  test("a body that is not form-encoded is 415", async () => {
    const res = await request(t.app, "POST", STATUS_PATH, { body: { MessageSid: sid(), MessageStatus: "delivered" } });
    expect(res.status).toBe(415);
    expect(res.json.code).toBe("unsupported_media_type");
  });

  test("a body past the size limit is 413, before any signature is looked at", async () => {
    const res = await postTwilio(t, STATUS_PATH, { MessageSid: sid(), MessageStatus: "delivered", Body: "x".repeat(t.config.maxBodyBytes) });
    expect(res.status).toBe(413);
    expect(res.json.code).toBe("payload_too_large");
  });

  test("a body that never finishes arriving is 408 once the body deadline has passed", async () => {
    const trickle = new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(new TextEncoder().encode("MessageSid=SM1&")) });
    const res = await rotating.app.handle(
      new Request(`http://localhost${STATUS_PATH}`, { method: "POST", headers: FORM_TYPE, body: trickle, duplex: "half" } as RequestInit),
    );
    expect(res.status).toBe(408);
    expect(((await res.json()) as { code: string }).code).toBe("request_timeout");
  });

  test("a provider that is not configured, or not a Twilio one, is 404", async () => {
    for (const path of ["/api/webhooks/twilio/nobody/status", "/api/webhooks/twilio/sendgrid-main/status", "/api/webhooks/sendgrid/twilio-main/events"]) {
      const res = await postTwilio(t, path, { MessageSid: sid(), MessageStatus: "delivered" });
      expect(res.status).toBe(404);
      expect(res.json.code).toBe("not_found");
    }
  });

  test("during a rotation's overlap both the current and the previous auth token verify", async () => {
    for (const token of [TOKEN, OLD_TOKEN]) {
      const messageSid = sid();
      const id = await sentMessage(rotating, messageSid);
      const res = await postTwilio(rotating, STATUS_PATH, { MessageSid: messageSid, MessageStatus: "delivered" }, { token });
      expect(res.status).toBe(204);
      expect((await messageRow(rotating, id)).status).toBe("delivered");
    }
    expect((await postTwilio(rotating, STATUS_PATH, { MessageSid: sid(), MessageStatus: "delivered" }, { token: "retired-token" })).status).toBe(401);
  });
});

describe("POST /api/webhooks/twilio/{provider}/inbound", () => {
  const inbound = (messageSid: string, extra: Record<string, string> = {}) => ({
    MessageSid: messageSid,
    SmsSid: messageSid,
    AccountSid: `AC${"0".repeat(32)}`,
    From: "+14155550123",
    To: "+15005550006",
    Body: "Hello from a phone",
    NumMedia: "0",
    ...extra,
  });

  test("a signed SMS is stored as an inbound sms and answered with empty TwiML", async () => {
    const messageSid = sid();
    const res = await postTwilio(t, INBOUND_PATH, inbound(messageSid));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("text/xml");
    expect(res.text).toBe('<?xml version="1.0" encoding="UTF-8"?><Response/>');
    const rows = await t.database.sql.query<{ direction: string; channel: string; from_addr: string; to_addr: string; body: string; status: string }>(
      "SELECT direction, channel, from_addr, to_addr, body, status FROM messages WHERE provider_message_id = $1",
      [messageSid],
    );
    expect(rows).toEqual([{ direction: "inbound", channel: "sms", from_addr: "+14155550123", to_addr: "+15005550006", body: "Hello from a phone", status: "received" }]);
  });

  test("a repeated MessageSid stores nothing more and is answered the same", async () => {
    const messageSid = sid();
    expect((await postTwilio(t, INBOUND_PATH, inbound(messageSid))).status).toBe(200);
    const before = await webhookCount(t, { provider: "twilio-main", kind: "twilio_inbound", outcome: "duplicate" });
    const again = await postTwilio(t, INBOUND_PATH, inbound(messageSid));
    expect(again.status).toBe(200);
    expect(again.text).toBe('<?xml version="1.0" encoding="UTF-8"?><Response/>');
    expect(await count(t, "messages WHERE provider_message_id = $1", [messageSid])).toBe(1);
    expect(await webhookCount(t, { provider: "twilio-main", kind: "twilio_inbound", outcome: "duplicate" })).toBe(before + 1);
  });

  test("media make it an mms with MediaUrl0..N as attachments, even without a body", async () => {
    const messageSid = sid();
    const media = { NumMedia: "2", Body: "", MediaUrl0: "https://api.twilio.com/media/one", MediaContentType0: "image/jpeg", MediaUrl1: "https://api.twilio.com/media/two" };
    expect((await postTwilio(t, INBOUND_PATH, inbound(messageSid, media))).status).toBe(200);
    const [row] = await t.database.sql.query<{ channel: string; attachments: unknown; body: string }>(
      "SELECT channel, attachments, body FROM messages WHERE provider_message_id = $1",
      [messageSid],
    );
    expect(row).toEqual({ channel: "mms", attachments: ["https://api.twilio.com/media/one", "https://api.twilio.com/media/two"], body: "" });
  });

  test("an unsigned or wrongly signed message is 401 and nothing is stored", async () => {
    const messageSid = sid();
    expect((await postTwilio(t, INBOUND_PATH, inbound(messageSid), { signature: null })).status).toBe(401);
    expect((await postTwilio(t, INBOUND_PATH, inbound(messageSid), { token: OLD_TOKEN })).status).toBe(401);
    expect(await count(t, "messages WHERE provider_message_id = $1", [messageSid])).toBe(0);
  });

  test("a signed message with an unusable sender or a missing media URL is 400 and nothing is stored", async () => {
    const messageSid = sid();
    const badFrom = await postTwilio(t, INBOUND_PATH, inbound(messageSid, { From: "not a number" }));
    expect(badFrom.status).toBe(400);
    expect(badFrom.json.details[0].path).toBe("From");
    const missingMedia = await postTwilio(t, INBOUND_PATH, inbound(messageSid, { NumMedia: "1" }));
    expect(missingMedia.status).toBe(400);
    expect(missingMedia.json.details[0].path).toBe("attachments.0");
    expect(await count(t, "messages WHERE provider_message_id = $1", [messageSid])).toBe(0);
  });

  test("needs neither an API key nor our own X-Messaging-Signature, and a rotated token still verifies", async () => {
    // `rotating` has auth on and MESSAGING_WEBHOOK_SECRETS set; Twilio sends neither.
    const messageSid = sid();
    const res = await postTwilio(rotating, INBOUND_PATH, inbound(messageSid), { token: OLD_TOKEN });
    expect(res.status).toBe(200);
    expect(await count(rotating, "messages WHERE provider_message_id = $1", [messageSid])).toBe(1);
    // The routes of our own API still want their key and signature there.
    expect((await request(rotating.app, "POST", "/api/webhooks/sms", { body: {} })).status).toBe(401);
  });
});

describe("a stored credential that no longer decrypts", () => {
  test("is 503 with Retry-After (the provider retries), not a 401 that reads as a forgery, and nothing is stored", async () => {
    const messageSid = sid();
    undecryptable = true;
    try {
      const res = await postTwilio(rotating, INBOUND_PATH, { MessageSid: messageSid, From: "+15005550001", To: "+15005550006", Body: "hi", NumMedia: "0" });
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("60");
      expect(res.json).toMatchObject({ code: "service_unavailable", message: "the service cannot verify this webhook right now" });
      expect(JSON.stringify(res.json)).not.toContain("k0");
    } finally {
      undecryptable = false;
    }
    expect(await count(rotating, "messages WHERE provider_message_id = $1", [messageSid])).toBe(0);
  });
});

describe("POST /api/webhooks/sendgrid/{provider}/events", () => {
  const EVENTS_PATH = "/api/webhooks/sendgrid/sendgrid-main/events";
  const xMessageId = () => crypto.randomUUID().replaceAll("-", "").slice(0, 22);
  const nowSecs = () => String(Math.floor(Date.now() / 1000));

  function postEvents(app: TestApp, events: unknown, opts: { key?: KeyObject; timestamp?: string; signature?: string | null; body?: string } = {}) {
    const body = opts.body ?? JSON.stringify(events);
    const timestamp = opts.timestamp ?? nowSecs();
    const signature = opts.signature === undefined ? sendgridSign(opts.key ?? privateKey, timestamp, body) : opts.signature;
    const headers: Record<string, string> = { "content-type": "application/json", "x-twilio-email-event-webhook-timestamp": timestamp };
    if (signature !== null) headers["x-twilio-email-event-webhook-signature"] = signature;
    return request(app.app, "POST", EVENTS_PATH, { headers, body });
  }

  const event = (name: string, messageId: string, extra: Record<string, unknown> = {}) => ({
    email: "someone@example.org",
    timestamp: Math.floor(Date.now() / 1000),
    event: name,
    sg_event_id: crypto.randomUUID(),
    sg_message_id: `${messageId}.filterdrecv-1234-5678-0`,
    ...extra,
  });

  test("a signed batch applies delivered, bounce and dropped, leaves processed alone and skips unknown messages", async () => {
    const [a, b, c, d] = [xMessageId(), xMessageId(), xMessageId(), xMessageId()];
    const ids = { a: await sentMessage(t, a, "email"), b: await sentMessage(t, b, "email"), c: await sentMessage(t, c, "email"), d: await sentMessage(t, d, "email") };
    const batch = [
      event("processed", a),
      event("delivered", a),
      event("bounce", b, { reason: "550 5.1.1 mailbox unknown", type: "bounce" }),
      event("deferred", c),
      event("dropped", d, { reason: "Bounced Address" }),
      event("delivered", xMessageId()),
      { event: "group_unsubscribe", sg_event_id: crypto.randomUUID(), timestamp: 1 },
    ];
    const res = await postEvents(t, batch);
    expect(res.status).toBe(204);
    expect(await messageRow(t, ids.a)).toEqual({ status: "delivered", status_reason: null });
    expect(await messageRow(t, ids.b)).toEqual({ status: "undelivered", status_reason: "550 5.1.1 mailbox unknown" });
    expect(await messageRow(t, ids.c)).toEqual({ status: "sent", status_reason: null });
    expect(await messageRow(t, ids.d)).toEqual({ status: "undelivered", status_reason: "Bounced Address" });
    // Every event naming a message is remembered; the account event without sg_message_id is not.
    expect(await count(t, "provider_events WHERE provider = 'sendgrid-main' AND event_id = ANY($1::text[])", [`{${batch.map((e) => e.sg_event_id).join(",")}}`])).toBe(6);
  });

  test("a batch delivered again is applied once", async () => {
    const a = xMessageId();
    const id = await sentMessage(t, a, "email");
    const batch = [event("delivered", a)];
    expect((await postEvents(t, batch)).status).toBe(204);
    const before = await webhookCount(t, { provider: "sendgrid-main", kind: "sendgrid_events", outcome: "duplicate" });
    expect((await postEvents(t, batch)).status).toBe(204);
    expect((await messageRow(t, id)).status).toBe("delivered");
    expect(await count(t, "provider_events WHERE event_id = $1", [batch[0]!.sg_event_id])).toBe(1);
    expect(await webhookCount(t, { provider: "sendgrid-main", kind: "sendgrid_events", outcome: "duplicate" })).toBe(before + 1);
  });

  test("a missing, wrong, foreign-key or stale signature is 401 and nothing is applied", async () => {
    const a = xMessageId();
    const id = await sentMessage(t, a, "email");
    const batch = [event("delivered", a)];
    const stale = String(Math.floor(Date.now() / 1000) - 3 * 24 * 3600);
    const attempts = [
      await postEvents(t, batch, { signature: null }),
      await postEvents(t, batch, { key: other.privateKey }),
      await postEvents(t, batch, { timestamp: stale }),
      await postEvents(t, batch, { signature: sendgridSign(privateKey, nowSecs(), JSON.stringify([event("bounce", a)])) }),
    ];
    for (const res of attempts) {
      expect(res.status).toBe(401);
      expect(res.json.code).toBe("unauthorized");
    }
    expect((await messageRow(t, id)).status).toBe("sent");
    expect(await count(t, "provider_events WHERE event_id = $1", [batch[0]!.sg_event_id])).toBe(0);
  });

  test("a signed body that is not a batch of events is 400", async () => {
    const notArray = await postEvents(t, { event: "delivered" });
    expect(notArray.status).toBe(400);
    expect(notArray.json.code).toBe("validation_failed");
    const notJson = await postEvents(t, null, { body: "[{" });
    expect(notJson.status).toBe(400);
    expect(notJson.json.code).toBe("invalid_json");
  });

  test("old event ids are purged by the periodic chore", async () => {
    const a = xMessageId();
    await sentMessage(t, a, "email");
    const batch = [event("delivered", a)];
    expect((await postEvents(t, batch)).status).toBe(204);
    await t.database.sql.query("UPDATE provider_events SET received_at = now() - make_interval(hours => $2::int) WHERE event_id = $1", [
      batch[0]!.sg_event_id,
      EVENT_ID_RETENTION_HOURS + 1,
    ]);
    const purged = await new Promise<{ deleted: number } | { error: unknown }>((resolve) => {
      const stop = scheduleProviderEventPurge(t.database.sql, (result) => {
        stop();
        resolve(result);
      });
    });
    expect(purged).toMatchObject({ deleted: expect.any(Number) });
    expect(await count(t, "provider_events WHERE event_id = $1", [batch[0]!.sg_event_id])).toBe(0);
  });
});

describe("POST /api/webhooks/sendgrid/{provider}/inbound", () => {
  const PARSE_PATH = "/api/webhooks/sendgrid/sendgrid-main/inbound";
  const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

  function parseForm(messageId: string | null, extra: Record<string, string> = {}): FormData {
    const body = new FormData();
    const headers = [
      "Received: by mx.sendgrid.net with SMTP id abc",
      'From: "Doe, Jane" <jane@example.org>',
      "To: support@example.com",
      ...(messageId === null ? [] : [`Message-ID:\r\n <${messageId}>`]),
      "Subject: Help please",
    ].join("\r\n");
    const fields: Record<string, string> = {
      headers,
      from: '"Doe, Jane" <jane@example.org>',
      to: "support@example.com",
      subject: "Help please",
      text: "My order did not arrive.",
      html: "<p>My order did not arrive.</p>",
      envelope: JSON.stringify({ to: ["support@example.com"], from: "bounces@example.org" }),
      charsets: JSON.stringify({ to: "UTF-8", subject: "UTF-8", from: "UTF-8", text: "UTF-8" }),
      SPF: "pass",
      ...extra,
    };
    for (const [name, value] of Object.entries(fields)) body.append(name, value);
    body.append("attachment1", new Blob(["%PDF-1.4"], { type: "application/pdf" }), "invoice.pdf");
    return body;
  }

  /** Multipart as a browser or SendGrid sends it: the body and its boundary from the platform's own encoder. */
  async function postParse(app: TestApp, body: FormData, authorization: string | null) {
    const encoded = new Response(body);
    const headers: Record<string, string> = { "content-type": encoded.headers.get("content-type")! };
    if (authorization !== null) headers.authorization = authorization;
    return request(app.app, "POST", PARSE_PATH, { headers, body: await encoded.text() });
  }

  test("an email with the Parse URL's credentials is stored with its subject, sender and recipient", async () => {
    const messageId = `${crypto.randomUUID()}@mail.example.org`;
    const res = await postParse(t, parseForm(messageId), basic("sendgrid-main", PARSE_PASSWORD));
    expect(res.status).toBe(204);
    const rows = await t.database.sql.query<{ channel: string; direction: string; from_addr: string; to_addr: string; subject: string; body: string }>(
      "SELECT channel, direction, from_addr, to_addr, subject, body FROM messages WHERE provider_message_id = $1",
      [`<${messageId}>`],
    );
    expect(rows).toEqual([
      { channel: "email", direction: "inbound", from_addr: "jane@example.org", to_addr: "support@example.com", subject: "Help please", body: "My order did not arrive." },
    ]);
  });

  test("the same Message-ID again stores nothing more; without one, a repeat of the same headers is recognised", async () => {
    const messageId = `${crypto.randomUUID()}@mail.example.org`;
    for (let i = 0; i < 2; i++) expect((await postParse(t, parseForm(messageId), basic("sendgrid-main", PARSE_PASSWORD))).status).toBe(204);
    expect(await count(t, "messages WHERE provider_message_id = $1", [`<${messageId}>`])).toBe(1);
    const unique = `Subject: ${crypto.randomUUID()}`;
    const before = await count(t, "messages WHERE direction = 'inbound' AND channel = 'email'");
    for (let i = 0; i < 2; i++) {
      const res = await postParse(t, parseForm(null, { headers: `From: jane@example.org\r\nTo: support@example.com\r\n${unique}` }), basic("sendgrid-main", PARSE_PASSWORD));
      expect(res.status).toBe(204);
    }
    expect(await count(t, "messages WHERE direction = 'inbound' AND channel = 'email'")).toBe(before + 1);
  });

  test("missing or wrong basic credentials are 401 with a Basic challenge, and nothing is stored", async () => {
    const messageId = `${crypto.randomUUID()}@mail.example.org`;
    for (const authorization of [null, basic("sendgrid-main", "wrong"), basic("someone-else", PARSE_PASSWORD), "Bearer msg_x_y"]) {
      const res = await postParse(t, parseForm(messageId), authorization);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toStartWith("Basic ");
      expect(res.json.code).toBe("unauthorized");
    }
    expect(await count(t, "messages WHERE provider_message_id = $1", [`<${messageId}>`])).toBe(0);
  });

  test("a body that is not multipart is 415, and a form without a usable sender is 400", async () => {
    const json = await request(t.app, "POST", PARSE_PATH, { headers: { authorization: basic("sendgrid-main", PARSE_PASSWORD) }, body: { from: "x" } });
    expect(json.status).toBe(415);
    const noSender = await postParse(t, parseForm(`${crypto.randomUUID()}@x.example`, { from: "undisclosed-recipients:;" }), basic("sendgrid-main", PARSE_PASSWORD));
    expect(noSender.status).toBe(400);
    expect(noSender.json.details[0].path).toBe("from");
  });

  test("a body that is not well-formed multipart is 400, and fields named like object members are just fields", async () => {
    const auth = { authorization: basic("sendgrid-main", PARSE_PASSWORD) };
    const broken = await request(t.app, "POST", PARSE_PATH, {
      headers: { ...auth, "content-type": "multipart/form-data; boundary=xyz" },
      body: "--xyz\r\nContent-Disposition: form-data\r\n\r\nno name and no end",
    });
    expect(broken.status).toBe(400);
    const messageId = `${crypto.randomUUID()}@mail.example.org`;
    const odd = parseForm(messageId, { toString: "x", ["__proto__"]: "y", constructor: "z" });
    expect((await postParse(t, odd, basic("sendgrid-main", PARSE_PASSWORD))).status).toBe(204);
    expect(await count(t, "messages WHERE provider_message_id = $1", [`<${messageId}>`])).toBe(1);
  });

  test("during a rotation's overlap both parse passwords are accepted", async () => {
    for (const password of [PARSE_PASSWORD, OLD_PARSE_PASSWORD]) {
      const res = await postParse(rotating, parseForm(`${crypto.randomUUID()}@mail.example.org`), basic("sendgrid-main", password));
      expect(res.status).toBe(204);
    }
  });
});

describe("the JSON API around them", () => {
  test("routes of our own still refuse a form body with 415", async () => {
    for (const path of ["/api/messages/sms", "/api/webhooks/sms", "/api/provider/mock/inbound"]) {
      const res = await request(t.app, "POST", path, { headers: FORM_TYPE, body: form({ from: "+14155550100", to: "+14155550101", type: "sms", body: "x" }) });
      expect(res.status).toBe(415);
      expect(res.json.code).toBe("unsupported_media_type");
    }
  });

  test("a provider's bursts are not held to the per-IP rate limit, which still guards our own routes", async () => {
    const limited = await buildTestApp({ config: { publicUrl: PUBLIC_URL, providers: PROVIDERS, rateLimitPerIpPerMin: 2 } });
    try {
      for (let i = 0; i < 5; i++) {
        expect((await postTwilio(limited, STATUS_PATH, { MessageSid: sid(), MessageStatus: "delivered" }, { token: "unknown-here" })).status).toBe(401);
      }
      const own = [];
      for (let i = 0; i < 3; i++) own.push((await request(limited.app, "GET", "/api/conversations")).status);
      expect(own).toContain(429);
    } finally {
      await limited.close();
    }
  });

  test("/metrics counts provider webhooks by provider, kind and outcome", async () => {
    await postTwilio(t, STATUS_PATH, { MessageSid: sid(), MessageStatus: "delivered" }, { signature: null });
    const res = await request(t.app, "GET", "/metrics", { headers: { accept: "text/plain" } });
    expect(res.text).toMatch(/messaging_provider_webhooks_total\{provider="twilio-main",kind="twilio_status",outcome="unauthorized"\} [1-9]/);
  });
});
