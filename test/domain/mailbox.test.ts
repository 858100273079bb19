import { describe, expect, test } from "bun:test";
import { emailSenderProblem, normalizeEmail } from "../../src/domain/address.ts";
import { defaultSubject, bodyText } from "../../src/domain/email-text.ts";
import { parseMailbox } from "../../src/domain/mailbox.ts";

describe("an email sender with a display name (RFC 5322 name-addr, parsed by nodemailer's addressparser)", () => {
  test.each([
    ["Example <noreply@example.com>", { address: "noreply@example.com", name: "Example" }],
    ['"Doe, Jane" <jane@example.com>', { address: "jane@example.com", name: "Doe, Jane" }],
    ["Zoë Ünal <zoe@example.org>", { address: "zoe@example.org", name: "Zoë Ünal" }],
    ["<bare@example.com>", { address: "bare@example.com" }],
    ["plain@example.com", { address: "plain@example.com" }],
  ])("%s", (raw, expected) => {
    expect(parseMailbox(raw)).toEqual(expected);
    expect(emailSenderProblem(raw)).toBeNull();
  });

  test.each(["a@example.com, b@example.com", "group: a@example.com;", "Name only", "Name <not an address>", "Name <a@b>", "x\r\nBcc: y@example.com <a@example.com>"])(
    "refuses %s",
    (raw) => expect(emailSenderProblem(raw)).not.toBeNull(),
  );

  test("the conversation uses the address: a name changes nothing about who the participant is", () => {
    expect(normalizeEmail("Example <NoReply+news@Example.com>")).toBe("noreply@example.com");
    expect(normalizeEmail("noreply@example.com")).toBe("noreply@example.com");
  });
});

describe("an email's text (html-to-text)", () => {
  test("the default subject of an HTML body is its text: tags removed, entities decoded, whitespace collapsed", () => {
    expect(defaultSubject("<p>HTML body, <b>no subject</b> given</p>")).toBe("HTML body, no subject given");
    expect(defaultSubject("<html><head><style>p{}</style></head><body><h1>Caf&eacute; &amp; bar</h1><script>x()</script><p>next</p></body></html>")).toBe("Café & bar next");
  });

  test("cut to 78 characters; a plain body is used as it is; nothing at all is (no subject)", () => {
    expect(defaultSubject(`<p>${"word ".repeat(40)}</p>`)).toHaveLength(78);
    expect(defaultSubject("  plain   text\n here ")).toBe("plain text here");
    expect(defaultSubject("<p> </p>")).toBe("(no subject)");
  });

  test("the text alternative keeps paragraphs apart", () => {
    expect(bodyText("<p>one</p><p>two &lt;3</p>")).toBe("one\n\ntwo <3");
  });
});
