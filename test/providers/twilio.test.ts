import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { type OutboundMessage, type ProviderOutcome, sendWithTimeout } from "../../src/providers/provider.ts";
import { retryAfterMs, type TwilioCredentials, TwilioProvider, type TwilioProviderOptions } from "../../src/providers/twilio/adapter.ts";
import { createEgress } from "../../src/security/egress.ts";
import { FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, type FakeTwilio, startFakeTwilio } from "./twilio-fake.ts";
import { loadOperation, validationCounts } from "../helpers/openapi.ts";

const fake0Unchecked = () => {
  const op = loadOperation("twilio_api_v2010.json", "/2010-04-01/Accounts/{AccountSid}/Messages.json", "post");
  return typeof op === "string" ? op : undefined;
};

/**
 * The Twilio adapter (src/providers/twilio/adapter.ts) against a fake Twilio on loopback (twilio-fake.ts), every call going
 * through the egress guard with only the fake's address and port allowed. One test per class of answer.
 */

let fake: FakeTwilio;
beforeAll(async () => {
  fake = await startFakeTwilio();
});
afterAll(() => console.log(`[openapi] requests checked against the providers' descriptions so far: ${JSON.stringify(validationCounts)}`));
afterAll(() => fake.close());
// Every request the adapter made must conform to Twilio's own OpenAPI description (skipped, with the reason
// printed, when ../shared/specs/ is absent).
afterEach(() => {
  try {
    fake.assertConformant();
  } finally {
    fake.reset();
  }
});
if (fake0Unchecked()) console.log(`[twilio] skipped: ${fake0Unchecked()}`);

const STATUS_CALLBACK = "https://messaging.example.com/api/webhooks/twilio/twilio-main/status";
const SERVICE_SID = `MG${"fedcba9876543210".repeat(2)}`;

const sms: OutboundMessage = { id: "42", channel: "sms", from: "+14155550100", to: "+14155550101", body: "Hello & welcome, 50% off", attachments: [] };
const mms: OutboundMessage = {
  ...sms,
  id: "43",
  channel: "mms",
  body: "",
  attachments: ["https://cdn.example.com/a.png?x=1&y=2", "https://cdn.example.com/b.jpg"],
};

const guard = (timeoutMs = 2_000) => createEgress({ allowlist: ["127.0.0.1"], allowHttp: true, ports: [fake.port], timeoutMs });

function twilio(overrides: Partial<TwilioProviderOptions> = {}): TwilioProvider {
  return new TwilioProvider("twilio-main", {
    accountSid: FAKE_ACCOUNT_SID,
    credentials: () => ({ username: FAKE_ACCOUNT_SID, password: FAKE_AUTH_TOKEN }),
    statusCallbackUrl: STATUS_CALLBACK,
    baseUrl: fake.baseUrl,
    egress: guard(),
    ...overrides,
  });
}

const send = (message: OutboundMessage, provider = twilio()): Promise<ProviderOutcome> => sendWithTimeout(provider, message, 3_000);
const basic = (username: string, password: string) => `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;

describe("a message Twilio accepts", () => {
  test("is posted form-encoded to the account's Messages.json with basic auth, and accepted with the returned sid", async () => {
    const outcome = await send(sms);
    expect(outcome).toEqual({ kind: "accepted", providerMessageId: fake.sids.at(-1)! });
    expect(fake.sids.at(-1)).toMatch(/^SM[0-9a-f]{32}$/);
    const [request] = fake.requests;
    expect(request!.method).toBe("POST");
    expect(request!.path).toBe(`/2010-04-01/Accounts/${FAKE_ACCOUNT_SID}/Messages.json`);
    expect(request!.headers.authorization).toBe(basic(FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN));
    expect(request!.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(request!.body).toBe(
      `To=%2B14155550101&From=%2B14155550100&Body=Hello+%26+welcome%2C+50%25+off&StatusCallback=${encodeURIComponent(STATUS_CALLBACK)}`,
    );
  });

  test("To and From go out in E.164 however the caller wrote them (spaces, dots, dashes, parentheses)", async () => {
    await send({ ...sms, from: "+1 (415) 555-0100", to: "+1 415.555.0101" });
    expect(fake.requests[0]!.form.slice(0, 2)).toEqual([["To", "+14155550101"], ["From", "+14155550100"]]);
  });

  test("with a messaging service, sends both MessagingServiceSid and the message's From, and one MediaUrl per attachment", async () => {
    const outcome = await send(mms, twilio({ messagingServiceSid: SERVICE_SID }));
    expect(outcome.kind).toBe("accepted");
    expect(fake.requests[0]!.form).toEqual([
      ["To", mms.to],
      ["From", mms.from],
      ["MessagingServiceSid", SERVICE_SID],
      ["MediaUrl", mms.attachments[0]!],
      ["MediaUrl", mms.attachments[1]!],
      ["StatusCallback", STATUS_CALLBACK],
    ]);
  });

  test("a body and attachments go together; no StatusCallback is sent when none is configured", async () => {
    await send({ ...mms, body: "look" }, twilio({ statusCallbackUrl: undefined }));
    expect(fake.requests[0]!.form).toEqual([
      ["To", mms.to],
      ["From", mms.from],
      ["Body", "look"],
      ["MediaUrl", mms.attachments[0]!],
      ["MediaUrl", mms.attachments[1]!],
    ]);
  });

  test("reads the credentials at every call, so a rotated token or an API key applies to the next message", async () => {
    let current: TwilioCredentials = { username: FAKE_ACCOUNT_SID, password: FAKE_AUTH_TOKEN };
    const provider = twilio({ credentials: () => current });
    expect((await send(sms, provider)).kind).toBe("accepted");

    fake.credentials.set(FAKE_ACCOUNT_SID, "rotated-token");
    expect(await send(sms, provider)).toEqual({ kind: "permanent_error", reason: "twilio 20003: Authenticate", status: 401 });
    current = { username: FAKE_ACCOUNT_SID, password: "rotated-token" };
    expect((await send(sms, provider)).kind).toBe("accepted");

    fake.credentials.set("SK0123456789abcdef0123456789abcdef", "api-key-secret");
    current = { username: "SK0123456789abcdef0123456789abcdef", password: "api-key-secret" };
    expect((await send(sms, provider)).kind).toBe("accepted");
    expect(fake.requests.map((r) => r.headers.authorization)).toEqual([
      basic(FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN),
      basic(FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN),
      basic(FAKE_ACCOUNT_SID, "rotated-token"),
      basic("SK0123456789abcdef0123456789abcdef", "api-key-secret"),
    ]);
    fake.credentials.set(FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN);
  });

  test("carries no idempotency header: Twilio documents none for creating a Message", async () => {
    await send(sms);
    expect(Object.keys(fake.requests[0]!.headers).filter((name) => name.includes("idempotency"))).toEqual([]);
  });

  test("credentials that cannot be read are a transient error, and nothing is sent", async () => {
    const outcome = await send(sms, twilio({
      credentials: () => {
        throw new Error("credential twilio-main/auth_token: no master key decrypts it");
      },
    }));
    expect(outcome).toEqual({ kind: "transient_error", reason: "twilio request failed: credential twilio-main/auth_token: no master key decrypts it" });
    expect(fake.requests).toHaveLength(0);
  });
});

describe("a message Twilio refuses is a permanent error that keeps Twilio's code and message", () => {
  test("21211: the To is not a valid number", async () => {
    expect(await send({ ...sms, to: "+0123" })).toEqual({
      kind: "permanent_error",
      reason: "twilio 21211: The 'To' number +0123 is not a valid phone number.",
      status: 400,
    });
    // Twilio's own description refuses it too, so the check of every request is seen to work.
    if (fake.unchecked === undefined) expect(fake.violations.splice(0)).toEqual(['request 1: body/To must match format "phone-number"']);
  });

  test("21610: the recipient replied STOP, flagged as an opt-out (no other error is)", async () => {
    fake.unsubscribed.add("+14155550177");
    expect(await send({ ...sms, to: "+14155550177" })).toEqual({
      kind: "permanent_error",
      reason: "twilio 21610: Attempt to send to unsubscribed recipient",
      status: 400,
      recipientOptedOut: true,
    });
  });

  test("21602: neither a body nor media", async () => {
    expect(await send({ ...sms, body: "" })).toEqual({ kind: "permanent_error", reason: "twilio 21602: Message body is required.", status: 400 });
  });

  test("20404: an account SID the credentials do not belong to", async () => {
    const outcome = await send(sms, twilio({ accountSid: `AC${"1".repeat(32)}` }));
    expect(outcome).toMatchObject({ kind: "permanent_error", status: 404 });
    expect((outcome as { reason: string }).reason).toStartWith("twilio 20404: ");
  });
});

describe("rate limits", () => {
  test("429 with Retry-After in seconds is rate limited for that many milliseconds", async () => {
    fake.script({ kind: "rate_limited", retryAfterSeconds: 7 });
    expect(await send(sms)).toEqual({ kind: "rate_limited", retryAfterMs: 7_000 });
  });

  test("429 without Retry-After is rate limited with no delay given", async () => {
    fake.script({ kind: "rate_limited" });
    expect(await send(sms)).toEqual({ kind: "rate_limited" });
  });

  test("code 20429 is a rate limit whatever the status", async () => {
    fake.script({ kind: "rate_limited", status: 503, retryAfterSeconds: 2 });
    expect(await send(sms)).toEqual({ kind: "rate_limited", retryAfterMs: 2_000 });
  });
});

describe("server errors are transient, with the status", () => {
  test("500 with Twilio's error body keeps its code", async () => {
    fake.script({ kind: "server_error", status: 500 });
    expect(await send(sms)).toEqual({ kind: "transient_error", reason: "twilio 20500: Internal Server Error", status: 500 });
  });

  test.each([502, 503] as const)("%d with an HTML page from a load balancer", async (status) => {
    fake.script({ kind: "server_error", status });
    expect(await send(sms)).toEqual({ kind: "transient_error", reason: `twilio answered ${status} without an error body`, status });
  });
});

describe("garbage answers", () => {
  test.each([
    ["not JSON", "<html>oops</html>"],
    ["JSON without a sid", '{"status":"queued"}'],
    ["a sid that is not a string", '{"sid":12345}'],
    ["an empty sid", '{"sid":""}'],
    ["a JSON array", '[{"sid":"SM1"}]'],
    ["bytes that are not UTF-8 around a sid", new Uint8Array([...Buffer.from('{"sid":"SM1'), 0xff, 0xfe, ...Buffer.from('"}')])],
  ])("a 201 with %s is still an acceptance (final: a retry would send it twice), without an id", async (_, body) => {
    fake.script({ kind: "garbage", status: 201, body });
    expect(await send(sms)).toEqual({ kind: "accepted", providerMessageId: null });
  });

  test("a 400 whose body is not Twilio's error JSON is still permanent: the status says the request was refused", async () => {
    fake.script({ kind: "garbage", status: 400, body: "Bad Request", contentType: "text/plain" });
    expect(await send(sms)).toEqual({ kind: "permanent_error", reason: "twilio answered 400 without an error body", status: 400 });
  });

  test("an error body with fields of the wrong types is read as no error body", async () => {
    fake.script({ kind: "garbage", status: 400, body: '{"code":"21211","message":42}' });
    expect(await send(sms)).toEqual({ kind: "permanent_error", reason: "twilio answered 400 without an error body", status: 400 });
  });
});

describe("broken connections", () => {
  test("an answer that never comes is transient once the call's timeout runs out", async () => {
    fake.script({ kind: "hang" });
    const started = performance.now();
    expect(await sendWithTimeout(twilio(), sms, 200)).toEqual({ kind: "transient_error", reason: "no answer within 200 ms" });
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  test("the call rejects with the signal's reason when aborted mid-request, and at once when already aborted", async () => {
    fake.script({ kind: "hang" });
    const controller = new AbortController();
    const pending = twilio().send(sms, { idempotencyKey: "k", signal: controller.signal });
    setTimeout(() => controller.abort(new Error("stopping")), 50);
    await expect(pending).rejects.toThrow("stopping");
    await expect(twilio().send(sms, { idempotencyKey: "k", signal: AbortSignal.abort(new Error("gone")) })).rejects.toThrow("gone");
  });

  test("the guard's own deadline ends a hung request even when the caller set none", async () => {
    fake.script({ kind: "hang" });
    const outcome = await twilio({ egress: guard(300) }).send(sms, { idempotencyKey: "k", signal: new AbortController().signal });
    expect(outcome).toMatchObject({ kind: "transient_error" });
    expect((outcome as { reason: string }).reason).toStartWith("twilio request timeout: ");
  });

  test("a connection reset before any answer is transient", async () => {
    fake.script({ kind: "reset" });
    const outcome = await send(sms);
    expect(outcome).toMatchObject({ kind: "transient_error" });
    expect((outcome as { reason: string }).reason).toStartWith("twilio request connection_failed: ");
  });

  test("a body cut off mid-way is transient", async () => {
    fake.script({ kind: "cut_body" });
    const outcome = await send(sms);
    expect(outcome).toMatchObject({ kind: "transient_error" });
    expect((outcome as { reason: string }).reason).toStartWith("twilio request connection_failed: ");
  });

  test("nothing listening on the port is transient", async () => {
    const closed = await startFakeTwilio();
    const { port } = closed;
    await closed.close();
    const egress = createEgress({ allowlist: ["127.0.0.1"], allowHttp: true, ports: [port] });
    const outcome = await send(sms, twilio({ baseUrl: `http://127.0.0.1:${port}`, egress }));
    expect(outcome).toMatchObject({ kind: "transient_error" });
    expect((outcome as { reason: string }).reason).toStartWith("twilio request connection_failed: ");
  });
});

describe("the egress guard", () => {
  test("a base URL the guard does not allow is a permanent configuration error, and nothing is sent", async () => {
    const egress = createEgress({ allowlist: ["api.twilio.com"], allowHttp: true, ports: [fake.port] });
    const outcome = await send(sms, twilio({ egress }));
    expect(outcome).toMatchObject({ kind: "permanent_error" });
    expect((outcome as { reason: string }).reason).toStartWith("twilio request host_not_allowed: ");
    expect((outcome as { reason: string }).reason).toEndWith("(configuration error)");
    expect(fake.requests).toHaveLength(0);
  });

  test("a loopback base URL without the explicit allowance is refused as a private address", async () => {
    const egress = createEgress({ allowlist: [".localhost.test"], allowHttp: true, ports: [fake.port], resolve: async () => [{ address: "127.0.0.1", family: 4 }] });
    const outcome = await send(sms, twilio({ egress, baseUrl: `http://api.localhost.test:${fake.port}` }));
    expect(outcome).toMatchObject({ kind: "permanent_error" });
    expect((outcome as { reason: string }).reason).toStartWith("twilio request private_address: ");
    expect(fake.requests).toHaveLength(0);
  });

  test("plain http is refused unless allowed", async () => {
    const egress = createEgress({ allowlist: ["127.0.0.1"], allowHttp: false, ports: [fake.port] });
    const outcome = await send(sms, twilio({ egress }));
    expect((outcome as { reason: string }).reason).toStartWith("twilio request scheme: ");
    expect(outcome.kind).toBe("permanent_error");
  });
});

describe("retryAfterMs", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  test.each([
    ["30", 30_000],
    [" 0 ", 0],
    ["Thu, 01 Jan 2026 00:00:05 GMT", 5_000],
    ["Wed, 31 Dec 2025 23:59:00 GMT", 0],
    ["soon", undefined],
    ["-5", undefined],
    ["1.5", undefined],
    [null, undefined],
  ])("Retry-After %p is %p ms", (header, ms) => {
    expect(retryAfterMs(header, now)).toBe(ms);
  });
});
