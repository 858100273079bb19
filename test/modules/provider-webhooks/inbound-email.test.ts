import { describe, expect, test } from "bun:test";
import { firstMailbox, messageIdOf } from "../../../src/modules/provider-webhooks/inbound-email.ts";
import { twilioSignedUrls } from "../../../src/providers/twilio/signature.ts";

describe("firstMailbox", () => {
  test.each([
    ["jane@example.org", "jane@example.org"],
    ["  jane@example.org  ", "jane@example.org"],
    ["Jane <jane@example.org>", "jane@example.org"],
    ['"Doe, Jane" <jane@example.org>', "jane@example.org"],
    ['"Doe, Jane" <jane@example.org>, bob@example.org', "jane@example.org"],
    ["support@example.com, sales@example.com", "support@example.com"],
    ['"support@example.com"', "support@example.com"],
    ["undisclosed-recipients:;", undefined],
    ["", undefined],
    ["Jane Doe", undefined],
  ])("%p → %p", (field, expected) => {
    expect(firstMailbox(field)).toBe(expected);
  });
});

describe("messageIdOf", () => {
  test.each([
    ["Message-ID: <abc@example.org>", "<abc@example.org>"],
    ["From: a@b.example\r\nmessage-id: <lower@example.org>\r\nSubject: x", "<lower@example.org>"],
    ["Message-Id:\r\n <folded@example.org>\r\nSubject: x", "<folded@example.org>"],
    ["Message-ID:\n\t<tab-folded@example.org>", "<tab-folded@example.org>"],
    ["Message-ID: <first@example.org>\nMessage-ID: <second@example.org>", "<first@example.org>"],
    ["Subject: no id here\nX-Message-ID-Not: <x@example.org>", undefined],
    ["Message-ID:   ", undefined],
    ["", undefined],
  ])("%p → %p", (headers, expected) => {
    expect(messageIdOf(headers)).toBe(expected);
  });
});

describe("twilioSignedUrls", () => {
  test.each([
    // The public URL replaces scheme and authority; the path and query are the request's own.
    ["https://hooks.example.com", "http://10.0.0.5:3000/api/x?a=1", ["https://hooks.example.com/api/x?a=1", "https://hooks.example.com:443/api/x?a=1"]],
    ["https://hooks.example.com/", "http://10.0.0.5:3000/api/x", ["https://hooks.example.com/api/x", "https://hooks.example.com:443/api/x"]],
    ["https://hooks.example.com:443", "http://h/api/x", ["https://hooks.example.com:443/api/x", "https://hooks.example.com/api/x"]],
    ["https://hooks.example.com:8443", "http://h/api/x", ["https://hooks.example.com:8443/api/x"]],
    // Without a public URL, the URL the request arrived at.
    [undefined, "http://127.0.0.1:3000/api/x", ["http://127.0.0.1:3000/api/x"]],
    [undefined, "http://localhost/api/x", ["http://localhost/api/x", "http://localhost:80/api/x"]],
  ])("public %p, request %p", (publicUrl, requestUrl, expected) => {
    expect(twilioSignedUrls(publicUrl, requestUrl)).toEqual(expected);
  });
});
