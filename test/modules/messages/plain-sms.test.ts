import { describe, expect, test } from "bun:test";
import { messageModels, SMS_BODY_MAX } from "../../../src/modules/messages/model.ts";
import { plainSms } from "../../../src/modules/messages/plain-sms.ts";

/*
 * The SMS model accepts the common send through plain-sms.ts without running its checks. Whatever the body, the
 * answer Elysia gets (`~standard.validate`) must be the model's own (`safeParse` runs the checks alone): the
 * same output for what it accepts, the same issues for what it refuses.
 */
const sendSms = messageModels({ maxAttachments: 10 })["messages.sendSms"];

const BASE = { from: "+12015550100", to: "+18045550199", type: "sms", body: "hello", attachments: null, timestamp: "2024-11-01T14:00:00Z" };
const LONG = "x".repeat(SMS_BODY_MAX);

const cases: [string, unknown][] = [
  ["the common send", BASE],
  ["without attachments", { ...BASE, attachments: undefined }],
  ["with no key for attachments", (({ attachments: _a, ...rest }) => rest)(BASE)],
  ["with attachments []", { ...BASE, attachments: [] }],
  ["with send_at null", { ...BASE, send_at: null }],
  ["type in capitals, padded", { ...BASE, type: " SMS " }],
  ["formatted numbers", { ...BASE, from: "+1 (201) 555-0100", to: " 804.555.0199 " }],
  ["a short code", { ...BASE, from: "12345" }],
  ["a body of the longest length", { ...BASE, body: LONG }],
  ["a body one unit too long", { ...BASE, body: `${LONG}x` }],
  ["a body of emoji past 1600 units, under 1600 characters", { ...BASE, body: "\u{1F600}".repeat(900) }],
  ["a body with a surrounding space", { ...BASE, body: " hi " }],
  ["a timestamp with an offset and a fraction", { ...BASE, timestamp: "2024-11-01T09:00:00.250-05:00" }],
  ["mms with attachments", { ...BASE, type: "mms", attachments: ["https://example.com/a.jpg"] }],
  ["mms without attachments", { ...BASE, type: "mms" }],
  ["sms with an attachment", { ...BASE, attachments: ["https://example.com/a.jpg"] }],
  ["a bad attachment", { ...BASE, attachments: ["ftp://x"] }],
  ["attachments not a list", { ...BASE, attachments: "https://example.com/a.jpg" }],
  ["a send_at in the past", { ...BASE, send_at: "2024-11-01T14:00:00Z" }],
  ["a send_at that is no time", { ...BASE, send_at: "soon" }],
  ["an unknown key", { ...BASE, extra: 1 }],
  ["a __proto__ key", JSON.parse(`{"__proto__":{"x":1},"from":"+12015550100","to":"+18045550199","type":"sms","body":"b","timestamp":"2024-11-01T14:00:00Z"}`)],
  ["from missing", (({ from: _f, ...rest }) => rest)(BASE)],
  ["from a number", { ...BASE, from: 12015550100 }],
  ["from empty", { ...BASE, from: "" }],
  ["from blank", { ...BASE, from: "   " }],
  ["from with NUL", { ...BASE, from: "+1201555\u00000100" }],
  ["from too long", { ...BASE, from: `+1${" ".repeat(40)}2015550100` }],
  ["from an email", { ...BASE, from: "a@b.co" }],
  ["to too few digits", { ...BASE, to: "12" }],
  ["type email", { ...BASE, type: "email" }],
  ["type missing", (({ type: _t, ...rest }) => rest)(BASE)],
  ["type a number", { ...BASE, type: 1 }],
  ["body empty", { ...BASE, body: "" }],
  ["body blank", { ...BASE, body: " \n " }],
  ["body with NUL", { ...BASE, body: "a\u0000b" }],
  ["body null", { ...BASE, body: null }],
  ["timestamp without an offset", { ...BASE, timestamp: "2024-11-01T14:00:00" }],
  ["timestamp a date only", { ...BASE, timestamp: "2024-11-01" }],
  ["timestamp on February 30", { ...BASE, timestamp: "2024-02-30T14:00:00Z" }],
  ["timestamp in year 0 once the offset applies", { ...BASE, timestamp: "0001-01-01T00:30:00+01:00" }],
  ["timestamp a number", { ...BASE, timestamp: 1730469600 }],
  ["timestamp with NUL", { ...BASE, timestamp: "2024-11-01T14:00:00Z\u0000" }],
  ["an array", [BASE]],
  ["null", null],
  ["a string", "hello"],
  ["an empty object", {}],
];

function modelAnswer(value: unknown) {
  const r = sendSms.safeParse(value);
  return r.success ? { value: r.data } : { issues: r.error.issues.map(({ path, message }) => ({ path, message })) };
}

function elysiaAnswer(value: unknown) {
  const r = sendSms["~standard"].validate(value) as { value?: unknown; issues?: readonly { path?: readonly unknown[]; message: string }[] };
  return r.issues ? { issues: r.issues.map(({ path, message }) => ({ path, message })) } : { value: r.value };
}

describe("the SMS model with its plain-send shortcut", () => {
  test.each(cases)("answers as the model alone: %s", (_name, value) => {
    expect(elysiaAnswer(value)).toStrictEqual(modelAnswer(value));
  });

  test.each([
    ["the common send", BASE],
    ["with send_at null", { ...BASE, send_at: null }],
    ["type in capitals, padded", { ...BASE, type: " SMS " }],
    ["formatted numbers", { ...BASE, from: "+1 (201) 555-0100" }],
  ] as [string, unknown][])("takes the shortcut for %s", (_name, value) => {
    expect(plainSms(value, SMS_BODY_MAX)).toStrictEqual(sendSms.parse(value));
  });

  test.each(cases)("never accepts what the model refuses: %s", (_name, value) => {
    expect(plainSms(value, SMS_BODY_MAX) === undefined || sendSms.safeParse(value).success).toBe(true);
  });
});
