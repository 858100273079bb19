import { describe, expect, test } from "bun:test";
import { MAX_SENDGRID_EVENTS, parseSendGridEvents } from "../../src/providers/sendgrid/events.ts";

/** SendGrid event webhook bodies (src/providers/sendgrid/events.ts), shaped like the examples in SendGrid's reference. */

const X_MESSAGE_ID = "W3F1aWNrYnJvd25mb3hqdW";
const SG_MESSAGE_ID = `${X_MESSAGE_ID}.filterdrecv-5645d9c87f-78xgx-1-5F5A2C35-2.0`;
const TS = 1_767_000_000;

const event = (fields: Record<string, unknown>) => ({
  email: "user@example.com",
  timestamp: TS,
  "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
  sg_event_id: "ZGVsaXZlcmVkLTAtMjM0NTY3ODk",
  sg_message_id: SG_MESSAGE_ID,
  ...fields,
});

const only = (raw: unknown) => {
  const parsed = parseSendGridEvents(raw);
  if (!parsed.ok) throw new Error(`refused: ${parsed.problem}`);
  expect(parsed.events).toHaveLength(1);
  return parsed.events[0]!;
};

describe("parseSendGridEvents: what each event means for the message", () => {
  test.each([
    ["delivered", { response: "250 OK" }, "delivered", null],
    ["bounce", { reason: "550 5.1.1 The email account that you tried to reach does not exist.", type: "bounce" }, "undelivered", "550 5.1.1 The email account that you tried to reach does not exist."],
    ["bounce", { reason: "  blocked by policy  ", type: "blocked" }, "undelivered", "blocked by policy"],
    ["dropped", { reason: "Bounced Address" }, "undelivered", "Bounced Address"],
    ["dropped", {}, "undelivered", null],
    ["processed", {}, null, null],
    ["deferred", { response: "400 try again later", attempt: "5", reason: "try again" }, null, null],
    ["open", { useragent: "Mozilla/5.0", ip: "255.255.255.255" }, null, null],
    ["click", { url: "https://example.com" }, null, null],
    ["spamreport", {}, null, null],
    ["unsubscribe", {}, null, null],
    ["group_unsubscribe", { asm_group_id: 10 }, null, null],
    ["a-future-event", {}, null, null],
    ["constructor", {}, null, null],
  ] as const)("%s %j → status %p, reason %p", (name, extra, status, reason) => {
    const parsed = only([event({ event: name, ...extra })]);
    expect(parsed.status).toBe(status);
    expect(parsed.reason).toBe(reason);
  });

  test("the provider message id is the X-Message-Id: sg_message_id up to its first dot", () => {
    expect(only([event({ event: "delivered" })]).providerMessageId).toBe(X_MESSAGE_ID);
    expect(only([event({ event: "delivered", sg_message_id: X_MESSAGE_ID })]).providerMessageId).toBe(X_MESSAGE_ID);
  });

  test("keeps sg_event_id as the event id and the timestamp as a Date", () => {
    const parsed = only([event({ event: "delivered" })]);
    expect(parsed.eventId).toBe("ZGVsaXZlcmVkLTAtMjM0NTY3ODk");
    expect(parsed.at?.toISOString()).toBe(new Date(TS * 1000).toISOString());
  });

  test.each([["a string", "1767000000"], ["missing", undefined], ["negative", -1], ["absurdly large", 1e20]])(
    "a timestamp that is %s gives no date, not a refusal",
    (_, timestamp) => {
      expect(only([event({ event: "delivered", timestamp })]).at).toBeNull();
    },
  );

  test("a long reason is cut to 1000 characters", () => {
    expect(only([event({ event: "bounce", reason: "x".repeat(5000) })]).reason).toHaveLength(1000);
  });

  test("maps every event of a batch in order", () => {
    const parsed = parseSendGridEvents([
      event({ event: "processed", sg_event_id: "e1" }),
      event({ event: "delivered", sg_event_id: "e2" }),
      event({ event: "bounce", sg_event_id: "e3", sg_message_id: "Other.1", reason: "no such user" }),
    ]);
    expect(parsed).toEqual({
      ok: true,
      skipped: 0,
      events: [
        { eventId: "e1", providerMessageId: X_MESSAGE_ID, status: null, reason: null, at: new Date(TS * 1000) },
        { eventId: "e2", providerMessageId: X_MESSAGE_ID, status: "delivered", reason: null, at: new Date(TS * 1000) },
        { eventId: "e3", providerMessageId: "Other", status: "undelivered", reason: "no such user", at: new Date(TS * 1000) },
      ],
    });
  });

  test("an empty array is a valid, empty batch", () => {
    expect(parseSendGridEvents([])).toEqual({ ok: true, events: [], skipped: 0 });
  });
});

describe("parseSendGridEvents: events that name no message are skipped, not refused", () => {
  test.each([
    ["no sg_message_id (an account event)", { event: "account_status_change", sg_message_id: undefined }],
    ["a non-string sg_message_id", { event: "delivered", sg_message_id: 42 }],
    ["an sg_message_id starting with a dot", { event: "delivered", sg_message_id: ".filter0001" }],
    ["a blank sg_message_id", { event: "delivered", sg_message_id: "   " }],
  ])("%s", (_, fields) => {
    const parsed = parseSendGridEvents([event(fields), event({ event: "delivered", sg_event_id: "kept" })]);
    expect(parsed.ok && parsed.skipped).toBe(1);
    expect(parsed.ok && parsed.events.map((e) => e.eventId)).toEqual(["kept"]);
  });
});

describe("parseSendGridEvents: a batch of the wrong shape is refused whole", () => {
  test.each([
    ["an object", { event: "delivered" }, "not a JSON array"],
    ["null", null, "not a JSON array"],
    ["a string", "[]", "not a JSON array"],
    ["an element that is not an object", [event({ event: "delivered" }), "delivered"], "event 1 is not an object"],
    ["an element that is an array", [[]], "event 0 is not an object"],
    ["an element without event", [event({ event: undefined })], 'event 0 has no string "event"'],
    ["an event that is a number", [event({ event: 7 })], 'event 0 has no string "event"'],
    ["an element without sg_event_id", [event({ event: "delivered", sg_event_id: undefined })], '"sg_event_id"'],
    ["an empty sg_event_id", [event({ event: "delivered", sg_event_id: "" })], '"sg_event_id"'],
    ["an oversized sg_event_id", [event({ event: "delivered", sg_event_id: "e".repeat(257) })], '"sg_event_id"'],
  ] as const)("%s", (_, raw, problem) => {
    const parsed = parseSendGridEvents(raw);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.problem).toContain(problem);
  });

  test(`more than ${MAX_SENDGRID_EVENTS} events`, () => {
    const batch = (n: number) => Array.from({ length: n }, (_, i) => event({ event: "processed", sg_event_id: `e${i}` }));
    expect(parseSendGridEvents(batch(MAX_SENDGRID_EVENTS)).ok).toBe(true);
    const parsed = parseSendGridEvents(batch(MAX_SENDGRID_EVENTS + 1));
    expect(!parsed.ok && parsed.problem).toContain(`more than ${MAX_SENDGRID_EVENTS}`);
  });
});
