import { validationCounts } from "../helpers/openapi.ts";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { deliveryIdempotencyKey, type OutboundMessage, type ProviderOutcome, sendWithTimeout } from "../../src/providers/provider.ts";
import { looksLikeHtml } from "../../src/providers/email-content.ts";
import { MAX_RATE_LIMIT_WAIT_MS, SendGridProvider, type SendGridSettings } from "../../src/providers/sendgrid/adapter.ts";
import { createEgress, type EgressOptions } from "../../src/security/egress.ts";
import { attachmentFetcher } from "../../src/providers/attachments.ts";
import { type FakeSendGrid, startFakeSendGrid } from "./sendgrid-fake.ts";

/**
 * The SendGrid adapter (src/providers/sendgrid/adapter.ts) against a fake SendGrid on loopback (sendgrid-fake.ts), every
 * request through the egress guard, as the service makes it: each answer class SendGrid documents, and the
 * network failing in the ways networks do.
 */

const API_KEY = "SG.test-key.0123456789abcdefghijklmnopqrstuvwxyz";
const SENDER = "notifications@sender.example";
const NOW_MS = 1_767_000_000_000;

let fake: FakeSendGrid;

beforeAll(async () => {
  fake = await startFakeSendGrid({ apiKey: API_KEY, verifiedSenders: [SENDER], maxBodyBytes: 64 * 1024 });
});
afterAll(() => console.log(`[openapi] requests checked against the providers' descriptions so far: ${JSON.stringify(validationCounts)}`));
afterAll(() => fake.close());
// Every request the adapter made must conform to SendGrid's own OpenAPI description (skipped, with the reason
// printed, when ../shared/specs/ is absent).
afterEach(() => {
  if (fake.unchecked !== undefined) return console.log(`[sendgrid] ${fake.unchecked}`);
  fake.assertConformant();
});
beforeEach(() => {
  fake.requests.length = 0;
  fake.messageIds.length = 0;
});

const message = (fields: Partial<OutboundMessage> = {}): OutboundMessage => ({
  id: "42",
  channel: "email",
  from: SENDER,
  to: "bob@recipient.example",
  body: "Your order has shipped.",
  attachments: [],
  ...fields,
});

function provider(settings: Partial<SendGridSettings> = {}, egress: Partial<EgressOptions> = {}) {
  return new SendGridProvider("sendgrid-main", {
    apiKey: () => API_KEY,
    baseUrl: fake.baseUrl,
    egress: createEgress({ allowlist: ["127.0.0.1"], allowHttp: true, ports: [fake.port], ...egress }),
    now: () => NOW_MS,
    ...settings,
  });
}

const send = (m = message(), p = provider(), signal = new AbortController().signal): Promise<ProviderOutcome> =>
  p.send(m, { idempotencyKey: deliveryIdempotencyKey(m.id), signal });

const sentJson = (i = 0) => JSON.parse(fake.requests[i]!.body) as Record<string, unknown>;

describe("SendGrid accepts", () => {
  test("the exact v3 Mail Send request, answered with the X-Message-Id", async () => {
    const outcome = await send();
    expect(fake.messageIds).toHaveLength(1);
    expect(outcome).toEqual({ kind: "accepted", providerMessageId: fake.messageIds[0]! });
    expect(fake.messageIds[0]).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(fake.requests).toHaveLength(1);
    const [request] = fake.requests;
    expect(request!.method).toBe("POST");
    expect(request!.path).toBe("/v3/mail/send");
    expect(request!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(request!.headers["content-type"]).toBe("application/json");
    expect(request!.headers.host).toBe(`127.0.0.1:${fake.port}`);
    expect(sentJson()).toEqual({
      personalizations: [{ to: [{ email: "bob@recipient.example" }] }],
      from: { email: SENDER },
      subject: "Your order has shipped.",
      content: [{ type: "text/plain", value: "Your order has shipped." }],
    });
  });

  test("the message's own sender goes on the wire, never rewritten, and no reply_to is added", async () => {
    await send(message({ from: "Notifications <notifications@sender.example>" }));
    expect(sentJson().from).toEqual({ email: SENDER, name: "Notifications" });
    expect(sentJson()).not.toHaveProperty("reply_to");
  });

  test("a sender without a name takes the one the provider's senders give its address", async () => {
    await send(message(), provider({ senderName: (a) => (a === SENDER ? "Sender Team" : undefined) }));
    expect(sentJson().from).toEqual({ email: SENDER, name: "Sender Team" });
  });

  test("an HTML body goes as text/html, verbatim, after a plain-text alternative rendered from it", async () => {
    const body = "  <html><body><p>Hello <b>Bob</b> &amp; co</p></body></html>\n";
    expect((await send(message({ body }))).kind).toBe("accepted");
    expect(sentJson().content).toEqual([{ type: "text/plain", value: "Hello Bob & co" }, { type: "text/html", value: body }]);
  });

  test("an HTML body without a subject: the subject is its text, not its tags", async () => {
    await send(message({ body: "<p>HTML body, <b>no subject</b> given</p>" }));
    expect(sentJson().subject).toBe("HTML body, no subject given");
  });

  test("the message's subject is used as given", async () => {
    await send(message({ subject: "Order #1234" }));
    expect(sentJson().subject).toBe("Order #1234");
  });

  test("without a subject: the body's first 78 characters, whitespace collapsed", async () => {
    const body = `Dear Bob,\n\n  your order   ${"x".repeat(100)}`;
    await send(message({ body, subject: "  " }));
    const subject = sentJson().subject as string;
    expect(subject).toBe(`Dear Bob, your order ${"x".repeat(78 - "Dear Bob, your order ".length)}`);
    expect(subject).toHaveLength(78);
  });

  test("the API key is read at every call, so a rotated key is used from the next send", async () => {
    let key = "SG.revoked";
    const p = provider({ apiKey: () => key });
    expect(await send(message(), p)).toMatchObject({ kind: "permanent_error", status: 401 });
    key = API_KEY;
    expect((await send(message(), p)).kind).toBe("accepted");
    expect(fake.requests.map((r) => r.headers.authorization)).toEqual(["Bearer SG.revoked", `Bearer ${API_KEY}`]);
  });

  test("a key read with a trailing newline (saved by echo) is sent without it", async () => {
    expect((await send(message(), provider({ apiKey: () => `${API_KEY}\n` }))).kind).toBe("accepted");
    expect(fake.requests[0]!.headers.authorization).toBe(`Bearer ${API_KEY}`);
  });

  test("a base URL with a trailing slash still reaches /v3/mail/send", async () => {
    expect((await send(message(), provider({ baseUrl: `${fake.baseUrl}/` }))).kind).toBe("accepted");
    expect(fake.requests[0]!.path).toBe("/v3/mail/send");
  });
});

describe("SendGrid refuses: permanent, with its error list kept", () => {
  test("400 for an invalid recipient names the field", async () => {
    expect(await send(message({ to: "not-an-address" }))).toEqual({
      kind: "permanent_error",
      status: 400,
      reason: "SendGrid 400: personalizations.0.to.0.email: Does not contain a valid address.",
    });
    // SendGrid's own description refuses it too, so the check of every request is seen to work.
    if (fake.unchecked === undefined) expect(fake.violations.splice(0)).toEqual(['request 1: body/personalizations/0/to/0/email must match format "email"']);
  });

  test("400 for an invalid sender identity", async () => {
    const outcome = await send(message({ from: "nobody" }));
    expect(outcome).toMatchObject({ kind: "permanent_error", status: 400 });
    expect(outcome.kind === "permanent_error" && outcome.reason).toContain("from.email: The from email does not contain a valid address.");
    if (fake.unchecked === undefined) expect(fake.violations.splice(0)).toEqual(['request 1: body/from/email must match format "email"']);
  });

  test("401 for a wrong key", async () => {
    expect(await send(message(), provider({ apiKey: () => "SG.wrong" }))).toEqual({
      kind: "permanent_error",
      status: 401,
      reason: "SendGrid 401: The provided authorization grant is invalid, expired, or revoked",
    });
  });

  test("403 for a sender identity the account has not verified", async () => {
    expect(await send(message({ from: "other@sender.example" }))).toEqual({
      kind: "permanent_error",
      status: 403,
      reason: "SendGrid 403: from: The from address does not match a verified Sender Identity.",
    });
  });

  test("413 for a payload over SendGrid's limit", async () => {
    const outcome = await send(message({ body: "x".repeat(100 * 1024) }));
    expect(outcome).toMatchObject({ kind: "permanent_error", status: 413 });
    expect(outcome.kind === "permanent_error" && outcome.reason).toContain("too large");
  });

  test("404 from a base URL that is not SendGrid's API root", async () => {
    expect(await send(message(), provider({ baseUrl: `${fake.baseUrl}/api` }))).toMatchObject({ kind: "permanent_error", status: 404 });
  });

  test("a 400 whose body is not an error list still fails, with a generic reason", async () => {
    fake.script({ kind: "garbage", status: 400, body: "<html>Bad Request</html>" });
    expect(await send()).toEqual({ kind: "permanent_error", status: 400, reason: "SendGrid 400: no error list in the answer" });
  });

  test("at most ten of a long error list are kept", async () => {
    const errors = Array.from({ length: 30 }, (_, i) => ({ field: `f${i}`, message: `bad ${i}` }));
    fake.script({ kind: "garbage", status: 400, body: JSON.stringify({ errors }) });
    const outcome = await send();
    const reason = outcome.kind === "permanent_error" ? outcome.reason : "";
    expect(reason.split("; ")).toHaveLength(10);
    expect(reason).toEndWith("f9: bad 9");
  });
});

describe("SendGrid limits: rate-limited until X-RateLimit-Reset", () => {
  test.each([
    ["30 s ahead", String(NOW_MS / 1000 + 30), 30_000],
    ["already past", String(NOW_MS / 1000 - 30), 0],
    ["a day ahead (bounded)", String(NOW_MS / 1000 + 86_400), MAX_RATE_LIMIT_WAIT_MS],
  ])("reset %s", async (_, resetSecs, retryAfterMs) => {
    fake.script({ kind: "rate_limited", resetSecs });
    expect(await send()).toEqual({ kind: "rate_limited", retryAfterMs });
  });

  test.each([["missing", null], ["not a number", "soon"], ["negative", "-5"]])("reset %s: no wait is guessed", async (_, resetSecs) => {
    fake.script({ kind: "rate_limited", resetSecs });
    expect(await send()).toEqual({ kind: "rate_limited" });
  });
});

describe("SendGrid fails for now: transient", () => {
  test.each([500, 502, 503])("%d", async (status) => {
    fake.script({ kind: "server_error", status });
    expect(await send()).toEqual({ kind: "transient_error", status, reason: `SendGrid ${status}: internal error` });
  });

  test("202 without an X-Message-Id is still an acceptance (final, never resent), with no id to match reports by", async () => {
    fake.script({ kind: "garbage", status: 202, body: "" });
    expect(await send()).toEqual({ kind: "accepted", providerMessageId: null });
  });

  test.each([["with a dot", "abc.def"], ["with spaces", "abc def"], ["too long", "a".repeat(129)]])(
    "202 with an X-Message-Id %s is accepted without an id",
    async (_, id) => {
      fake.script({ kind: "garbage", status: 202, body: "", headers: { "x-message-id": id } });
      expect(await send()).toEqual({ kind: "accepted", providerMessageId: null });
    },
  );

  test("500 with a garbage body", async () => {
    fake.script({ kind: "garbage", status: 500, body: "\u0000\u00ff not json" });
    expect(await send()).toEqual({ kind: "transient_error", status: 500, reason: "SendGrid 500: no error list in the answer" });
  });

  test("408 from a proxy in between", async () => {
    fake.script({ kind: "garbage", status: 408, body: "" });
    expect(await send()).toMatchObject({ kind: "transient_error", status: 408 });
  });

  test("an answer slower than the guard's timeout", async () => {
    fake.script({ kind: "slow", ms: 1_000 });
    const outcome = await send(message(), provider({}, { timeoutMs: 200 }));
    expect(outcome).toMatchObject({ kind: "transient_error" });
    expect(outcome.kind === "transient_error" && outcome.reason).toContain("(timeout)");
  });

  test("a connection reset before any answer", async () => {
    fake.script({ kind: "reset" });
    const outcome = await send();
    expect(outcome.kind === "transient_error" && outcome.reason).toContain("(connection_failed)");
    expect(fake.requests).toHaveLength(1);
  });

  test("an API key that cannot be read right now", async () => {
    const outcome = await send(message(), provider({ apiKey: () => { throw new Error("keyring locked"); } }));
    expect(outcome).toEqual({ kind: "transient_error", reason: "the SendGrid API key could not be read: keyring locked" });
    expect(fake.requests).toHaveLength(0);
  });
});

describe("configuration the guard or the adapter refuses: permanent, nothing sent", () => {
  test("a base URL the egress allowlist does not allow", async () => {
    const outcome = await send(message(), provider({ baseUrl: `http://10.0.0.1:${fake.port}` }));
    expect(outcome.kind === "permanent_error" && outcome.reason).toContain("(host_not_allowed)");
    expect(fake.requests).toHaveLength(0);
  });

  test("an https-only guard and an http base URL", async () => {
    const outcome = await send(message(), provider({}, { allowHttp: false }));
    expect(outcome.kind === "permanent_error" && outcome.reason).toContain("(scheme)");
  });

  test("an empty API key", async () => {
    expect(await send(message(), provider({ apiKey: () => " " }))).toEqual({ kind: "permanent_error", reason: "no SendGrid API key is configured" });
    expect(fake.requests).toHaveLength(0);
  });

  test("a key with a line break is refused without its value in the reason", async () => {
    const outcome = await send(message(), provider({ apiKey: () => "SG.secret\r\nX-Injected: 1" }));
    expect(outcome).toEqual({ kind: "permanent_error", reason: "the SendGrid API key has characters an HTTP header cannot carry" });
    expect(fake.requests).toHaveLength(0);
  });

  test("attachments with no way to fetch them, rather than dropping them", async () => {
    const outcome = await send(message({ attachments: ["https://files.example/a.pdf"] }));
    expect(outcome).toEqual({ kind: "permanent_error", reason: "this SendGrid provider has no way to fetch attachments" });
    expect(fake.requests).toHaveLength(0);
  });
});

describe("the caller's signal", () => {
  test("an abort while SendGrid is slow rejects at once with the signal's reason", async () => {
    fake.script({ kind: "slow", ms: 2_000 });
    const controller = new AbortController();
    const reason = new Error("stopped");
    setTimeout(() => controller.abort(reason), 50);
    const started = performance.now();
    await expect(send(message(), provider(), controller.signal)).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  test("an already aborted signal sends nothing", async () => {
    const reason = new Error("timed out");
    await expect(send(message(), provider(), AbortSignal.abort(reason))).rejects.toBe(reason);
    await Bun.sleep(20);
    expect(fake.requests).toHaveLength(0);
  });
});

describe("under the dispatcher's sendWithTimeout", () => {
  test("an accepted send comes back as the same outcome", async () => {
    expect(await sendWithTimeout(provider(), message(), 2_000)).toEqual({ kind: "accepted", providerMessageId: fake.messageIds[0]! });
  });

  test("a SendGrid slower than the call's timeout is a transient error at the timeout", async () => {
    fake.script({ kind: "slow", ms: 2_000 });
    const started = performance.now();
    expect(await sendWithTimeout(provider(), message(), 100)).toEqual({ kind: "transient_error", reason: "no answer within 100 ms" });
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe("looksLikeHtml", () => {
  test.each([
    ["<p>Hello</p>", true],
    ["  \n<!doctype html><html><body>Hi</body></html>", true],
    ["<div>line<br>line</DIV >", true],
    ["Hello <b>Bob</b>", false],
    ["<3 see you tomorrow", false],
    ["<br>", false],
    ["a < b and b > c", false],
    ["", false],
  ])("%j → %p", (body, html) => {
    expect(looksLikeHtml(body)).toBe(html);
  });
});

describe("attachments, fetched through the egress guard and sent base64", () => {
  let files: ReturnType<typeof Bun.serve>;
  const PDF = new Uint8Array([0x25, 0x50, 0x44, 0x46, 0x2d, 0x31, 0x2e, 0x37, 0x0a, 0x00, 0xff]);
  beforeAll(() => {
    files = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch(req) {
        const path = new URL(req.url).pathname;
        if (path === "/docs/invoice.pdf") return new Response(PDF, { headers: { "content-type": "application/pdf" } });
        if (path === "/named") return new Response("hello", { headers: { "content-type": "text/plain; charset=utf-8", "content-disposition": 'attachment; filename="report 2024.txt"' } });
        if (path === "/big") return new Response(new Uint8Array(5000), { headers: { "content-type": "application/octet-stream" } });
        if (path === "/flaky") return new Response("try later", { status: 503 });
        return new Response("no", { status: 404 });
      },
    });
  });
  afterAll(() => files.stop(true));
  const url = (path: string) => `http://127.0.0.1:${files.port}${path}`;
  const withFetcher = (maxBytes = 4096) =>
    provider({ attachments: attachmentFetcher((maxResponseBytes) => createEgress({ allowlist: ["127.0.0.1"], allowHttp: true, ports: [files.port!], maxResponseBytes }), maxBytes) });

  test("each attachment arrives as base64 content with the type its server gave and a file name", async () => {
    expect((await send(message({ attachments: [url("/docs/invoice.pdf"), url("/named")] }), withFetcher())).kind).toBe("accepted");
    expect(sentJson().attachments).toEqual([
      { content: Buffer.from(PDF).toString("base64"), type: "application/pdf", filename: "invoice.pdf", disposition: "attachment" },
      { content: Buffer.from("hello").toString("base64"), type: "text/plain; charset=utf-8", filename: "report 2024.txt", disposition: "attachment" },
    ]);
  });

  test("a 404 fails the message for good, naming the attachment; nothing is sent", async () => {
    expect(await send(message({ attachments: [url("/gone")] }), withFetcher())).toEqual({ kind: "permanent_error", reason: "attachment 1: fetching it answered 404" });
    expect(fake.requests).toHaveLength(0);
  });

  test("over the size cap fails for good; a 503 is retried", async () => {
    expect(await send(message({ attachments: [url("/big")] }), withFetcher(4096))).toMatchObject({ kind: "permanent_error", reason: expect.stringContaining("larger than the 4096 bytes") });
    expect(await send(message({ attachments: [url("/flaky")] }), withFetcher())).toMatchObject({ kind: "transient_error" });
    expect(fake.requests).toHaveLength(0);
  });

  test("a URL the guard refuses (not in the allowlist) fails for good", async () => {
    const outcome = await send(message({ attachments: ["http://files.elsewhere.example/a.pdf"] }), withFetcher());
    expect(outcome).toMatchObject({ kind: "permanent_error", reason: expect.stringContaining("refused (host_not_allowed)") });
  });
});
