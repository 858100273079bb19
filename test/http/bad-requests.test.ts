import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, request, type TestApp } from "../helpers/app.ts";
import { countRows, emailSend, emailWebhook, smsSend, smsWebhook, TS, UNLIMITED } from "../helpers/messaging.ts";

// One table of requests that must be refused (and two that must not), each with the status and code it gets
// and, for validation errors, the field named in details[].path and in the message. None may be a 5xx.
let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: UNLIMITED });
});
afterAll(() => t.close());

interface Row {
  name: string;
  route: string;
  method?: "POST" | "PUT" | "GET";
  /** An object is sent as JSON; a string is sent as is with Content-Type: application/json. */
  body?: unknown;
  status: number;
  code?: string;
  field?: string;
}

const SMS = "/api/messages/sms";
const EMAIL = "/api/messages/email";
const HOOK_SMS = "/api/webhooks/sms";
const HOOK_EMAIL = "/api/webhooks/email";
const URL_2049 = `https://cdn.example.com/${"a".repeat(2049 - "https://cdn.example.com/".length)}`;

const without = (body: Record<string, unknown>, field: string) => {
  const copy = { ...body };
  delete copy[field];
  return copy;
};
const mms = (attachments: unknown) => smsSend({ type: "mms", attachments });
const invalid = (name: string, route: string, body: unknown, field: string): Row => ({ name, route, body, status: 400, code: "validation_failed", field });

const rows: Row[] = [
  // Missing fields
  ...["from", "to", "type", "body", "timestamp"].map((f) => invalid(`sms without ${f}`, SMS, without(smsSend(), f), f)),
  ...["from", "to", "body", "timestamp"].map((f) => invalid(`email without ${f}`, EMAIL, without(emailSend(), f), f)),
  // Wrong types
  invalid("from as a number", SMS, smsSend({ from: 12015550100 }), "from"),
  invalid("to as null", SMS, smsSend({ to: null }), "to"),
  invalid("body as an object", SMS, smsSend({ body: { text: "hi" } }), "body"),
  invalid("attachments as a string", SMS, smsSend({ attachments: "https://x.example.com/a.png" }), "attachments"),
  invalid("type as a number", SMS, smsSend({ type: 1 }), "type"),
  invalid("email body as an array", EMAIL, emailSend({ body: ["hi"] }), "body"),
  invalid("an email subject as a number", EMAIL, emailSend({ subject: 7 }), "subject"),
  invalid("an email subject of 999 characters", EMAIL, emailSend({ subject: "s".repeat(999) }), "subject"),
  invalid("an email subject with a line break", EMAIL, emailSend({ subject: "a\nb" }), "subject"),
  invalid("a webhook email subject of 999 characters", HOOK_EMAIL, emailWebhook({ subject: "s".repeat(999) }), "subject"),
  // Empty or blank
  invalid("empty from", SMS, smsSend({ from: "" }), "from"),
  invalid("whitespace to", SMS, smsSend({ to: "   " }), "to"),
  invalid("whitespace body", SMS, smsSend({ body: " \n\t " }), "body"),
  invalid("empty email body", EMAIL, emailSend({ body: "" }), "body"),
  // Phone numbers
  invalid("a phone with letters", SMS, smsSend({ from: "+1-CALL-NOW" }), "from"),
  invalid("a phone of two digits", SMS, smsSend({ to: "12" }), "to"),
  invalid("a phone of 16 digits", SMS, smsSend({ from: "+1234567890123456" }), "from"),
  invalid("an email address on the sms route", SMS, smsSend({ to: "someone@example.com" }), "to"),
  // Email addresses
  invalid("an email without @", EMAIL, emailSend({ from: "user.example.com" }), "from"),
  invalid("an email with two @", EMAIL, emailSend({ to: "user@@example.com" }), "to"),
  invalid("an email without a domain", EMAIL, emailSend({ from: "user@" }), "from"),
  invalid("an email without a local part", EMAIL, emailSend({ to: "@example.com" }), "to"),
  invalid("a phone number on the email route", EMAIL, emailSend({ to: "+12015550100" }), "to"),
  // Type
  invalid("an unknown type smsx", SMS, smsSend({ type: "smsx" }), "type"),
  invalid("type email on the sms route", SMS, smsSend({ type: "email" }), "type"),
  // MMS attachments
  invalid("mms with attachments null", SMS, mms(null), "attachments"),
  invalid("mms without attachments", SMS, without(mms([]), "attachments"), "attachments"),
  invalid("mms with attachments []", SMS, mms([]), "attachments"),
  invalid("9 attachments (max 8)", SMS, mms(Array.from({ length: 9 }, (_, i) => `https://x.example.com/${i}.png`)), "attachments"),
  invalid("an attachment that is not a URL", SMS, mms(["not a url"]), "attachments.0"),
  invalid("an ftp: attachment", SMS, mms(["ftp://files.example.com/a.png"]), "attachments.0"),
  invalid("a relative attachment", SMS, mms(["/images/a.png"]), "attachments.0"),
  invalid("a javascript: attachment", EMAIL, emailSend({ attachments: ["javascript:alert(1)"] }), "attachments.0"),
  invalid("an attachment of 2049 characters", SMS, mms([URL_2049]), "attachments.0"),
  invalid("an attachment that is a number", SMS, mms(["https://x.example.com/ok.png", 5]), "attachments.1"),
  // Timestamps
  invalid("a date-only timestamp", SMS, smsSend({ timestamp: "2024-11-01" }), "timestamp"),
  invalid("a timestamp without offset", SMS, smsSend({ timestamp: "2024-11-01T14:00:00" }), "timestamp"),
  invalid("a garbage timestamp", SMS, smsSend({ timestamp: "yesterday at noon" }), "timestamp"),
  invalid("February 30", SMS, smsSend({ timestamp: "2024-02-30T10:00:00Z" }), "timestamp"),
  invalid("hour 24", EMAIL, emailSend({ timestamp: "2024-11-01T24:00:00Z" }), "timestamp"),
  invalid("a numeric timestamp", SMS, smsSend({ timestamp: 1730469600 }), "timestamp"),
  invalid("a timestamp in year 0", SMS, smsSend({ timestamp: "0000-06-15T12:00:00Z" }), "timestamp"),
  invalid("a timestamp that its offset moves into year 0", SMS, smsSend({ timestamp: "0001-01-01T00:30:00+01:00" }), "timestamp"),
  invalid("a timestamp that its offset moves past 9999", EMAIL, emailSend({ timestamp: "9999-12-31T23:30:00-01:00" }), "timestamp"),
  invalid("a webhook timestamp past 9999", HOOK_SMS, smsWebhook({ timestamp: "9999-12-31T23:59:59-00:01" }), "timestamp"),
  // Address bounds (RFC 5321 for email; a phone number as written)
  invalid("an email address of 3,000 characters", EMAIL, emailSend({ from: `${"a".repeat(3000)}@example.com` }), "from"),
  invalid("an email address with random 3,000 characters", EMAIL, emailSend({ to: `${crypto.randomUUID().repeat(84)}@example.com` }), "to"),
  invalid("an email local part of 65 characters", HOOK_EMAIL, emailWebhook({ from: `${"a".repeat(65)}@example.com` }), "from"),
  invalid("an email address of 255 characters", EMAIL, emailSend({ to: `a@${"b".repeat(249)}.com` }), "to"),
  invalid("a phone number behind 3,000 separators", SMS, smsSend({ from: `+1${" ".repeat(3000)}2015550100` }), "from"),
  invalid("a mock inbound email address of 3,000 characters", "/api/provider/mock/inbound", { channel: "email", from: `${"a".repeat(3000)}@example.com`, to: "b@example.com", body: "x", timestamp: TS }, "from"),
  // Body length and content
  invalid("an sms body of 1601 characters", SMS, smsSend({ body: "x".repeat(1601) }), "body"),
  invalid("an sms body of 1601 emoji", SMS, smsSend({ body: "😀".repeat(1601) }), "body"),
  { name: "an sms body of exactly 1600 characters", route: SMS, body: smsSend({ body: "x".repeat(1600) }), status: 202, code: "accepted" },
  { name: "an sms body of exactly 1600 emoji", route: SMS, body: smsSend({ body: "😀".repeat(1600) }), status: 202, code: "accepted" },
  invalid("a NUL character in the body", SMS, smsSend({ body: "a\u0000b" }), "body"),
  invalid("a NUL character in an email body", EMAIL, emailSend({ body: "<p>\u0000</p>" }), "body"),
  // Webhooks
  invalid("an sms webhook without messaging_provider_id", HOOK_SMS, without(smsWebhook(), "messaging_provider_id"), "messaging_provider_id"),
  invalid("an sms webhook with an empty provider id", HOOK_SMS, smsWebhook({ messaging_provider_id: "" }), "messaging_provider_id"),
  invalid("an sms webhook with a numeric provider id", HOOK_SMS, smsWebhook({ messaging_provider_id: 42 }), "messaging_provider_id"),
  invalid("an email webhook without xillio_id", HOOK_EMAIL, without(emailWebhook(), "xillio_id"), "xillio_id"),
  invalid("an email webhook with a blank xillio_id", HOOK_EMAIL, emailWebhook({ xillio_id: "   " }), "xillio_id"),
  invalid("an sms webhook with a 256-character provider id", HOOK_SMS, smsWebhook({ messaging_provider_id: "p".repeat(256) }), "messaging_provider_id"),
  invalid("an mms webhook without attachments", HOOK_SMS, smsWebhook({ type: "mms", attachments: null }), "attachments"),
  invalid("an email webhook with a bad timestamp", HOOK_EMAIL, emailWebhook({ timestamp: "2024-13-01T00:00:00Z" }), "timestamp"),
  // Not an object at all
  { name: "a JSON array", route: SMS, body: "[]", status: 400, code: "validation_failed", field: "root" },
  { name: "JSON null", route: SMS, body: "null", status: 400, code: "validation_failed", field: "root" },
  { name: "a JSON string", route: EMAIL, body: '"hello"', status: 400, code: "validation_failed", field: "root" },
  { name: "an empty body", route: SMS, body: "", status: 400, code: "invalid_json" },
  { name: "a whitespace body", route: HOOK_SMS, body: "  \n ", status: 400, code: "invalid_json" },
  { name: "truncated JSON", route: HOOK_EMAIL, body: '{"from": "a@example.com", ', status: 400, code: "invalid_json" },
  // Hostile JSON: a 200 KB body of nested arrays overflowed the stack (500) while its error rendered it
  { name: "100,000 nested arrays", route: SMS, body: `${"[".repeat(100_000)}${"]".repeat(100_000)}`, status: 400, code: "invalid_json" },
  { name: "30,000 nested arrays in a field", route: HOOK_SMS, body: JSON.stringify(smsWebhook({ body: "@" })).replace('"@"', `${"[".repeat(30_000)}${"]".repeat(30_000)}`), status: 400, code: "invalid_json" },
  { name: "33 nested objects", route: EMAIL, body: `${'{"a":'.repeat(33)}1${"}".repeat(33)}`, status: 400, code: "invalid_json" },
  { name: "32 nested levels is only a schema error", route: SMS, body: JSON.stringify(smsSend({ body: "@" })).replace('"@"', `${"[".repeat(31)}${"]".repeat(31)}`), status: 400, code: "validation_failed", field: "body" },
  // A lone surrogate is refused rather than stored as U+FFFD
  { name: "a lone high surrogate in the body", route: SMS, body: JSON.stringify(smsSend({ body: "@" })).replace('"@"', '"a\\ud800b"'), status: 400, code: "invalid_json" },
  { name: "a lone low surrogate in a webhook", route: HOOK_EMAIL, body: JSON.stringify(emailWebhook({ body: "@" })).replace('"@"', '"\\udc00"'), status: 400, code: "invalid_json" },
  { name: "a high surrogate followed by a non-surrogate escape", route: EMAIL, body: JSON.stringify(emailSend({ body: "@" })).replace('"@"', '"\\uD83D\\u0041"'), status: 400, code: "invalid_json" },
  { name: "a lone surrogate in a key", route: SMS, body: JSON.stringify(smsSend()).replace("{", '{"\\ud800":1,'), status: 400, code: "invalid_json" },
  { name: "an escaped surrogate pair (an emoji) is accepted", route: SMS, body: JSON.stringify(smsSend({ body: "@" })).replace('"@"', '"\\ud83d\\ude00"'), status: 202, code: "accepted" },
  // Provider mock
  { ...invalid("a mock config percentage of 101", "/api/provider/mock/config", { timeout_pct: 0, error_pct: 101, ratelimit_pct: 0, seed: null }, "error_pct"), method: "PUT" },
  { ...invalid("a mock config summing to 101", "/api/provider/mock/config", { timeout_pct: 50, error_pct: 50, ratelimit_pct: 1, seed: null }, "root"), method: "PUT" },
  invalid("a mock inbound with channel fax", "/api/provider/mock/inbound", { channel: "fax", from: "+12015550100", to: "+12015550101", body: "x", timestamp: TS }, "channel"),
  // Reads
  { name: "a non-integer page", route: "/api/conversations?page=abc", method: "GET", status: 400, code: "validation_failed", field: "query.page" },
  { name: "a fractional pageSize", route: "/api/conversations/1/messages?pageSize=1.5", method: "GET", status: 400, code: "validation_failed", field: "query.pageSize" },
];

test("the table holds at least 40 refused requests", () => {
  expect(rows.filter((r) => r.status >= 400).length).toBeGreaterThanOrEqual(40);
});

describe.each(rows)("$name → $status $code", (row) => {
  test(`${row.method ?? "POST"} ${row.route} answers ${row.status}${row.field ? ` naming ${row.field}` : ""}`, async () => {
    const headers: Record<string, string> = typeof row.body === "string" ? { "content-type": "application/json" } : {};
    const res = await request(t.app, row.method ?? "POST", row.route, { body: row.body, headers });
    expect(res.status).toBeLessThan(500);
    expect(res.status).toBe(row.status);
    if (row.status === 202) {
      expect(res.json.status).toBe(row.code!);
      return;
    }
    expect(res.headers.get("content-type")).toStartWith("application/json");
    expect(res.json.code).toBe(row.code!);
    expect(res.json.message).toBeString();
    expect(res.json.request_id).toBe(res.headers.get("x-request-id")!);
    if (row.field) {
      expect(res.json.details).toContainEqual({ path: row.field, message: expect.any(String) });
      expect(res.json.message).toContain(row.field === "root" ? "request" : row.field);
    }
  });
});

test("only the accepted rows stored a message", async () => {
  expect(await countRows(t.database, "messages")).toBe(rows.filter((r) => r.status === 202).length);
});
