import { describe, expect, test } from "bun:test";
import {
  EMAIL_LOCAL_PART_MAX_LENGTH,
  EMAIL_MAX_LENGTH,
  emailAddressProblem,
  isEmailAddress,
  isPhoneAddress,
  normalizeEmail,
  normalizePhone,
  PHONE_MAX_LENGTH,
  phoneAddressProblem,
} from "../../src/domain/address";

describe("normalizePhone", () => {
  test.each([
    ["+1 (201) 555-0100", "+12015550100", "keeps the leading + and drops separators"],
    ["+12015550100", "+12015550100", "leaves an already normal number unchanged"],
    ["(201) 555.0100", "2015550100", "drops parentheses, spaces and dots without adding a +"],
    ["  +44 20 7946 0958 ", "+442079460958", "ignores surrounding whitespace before looking for +"],
    ["12345", "12345", "keeps a short code as is"],
    ["1+2015550100", "12015550100", "drops a + that is not leading"],
    ["++1 201", "+1201", "collapses repeated leading + into one"],
    ["", "", "returns empty for empty input"],
  ])("%p → %p (%s)", (raw, expected) => {
    expect(normalizePhone(raw)).toBe(expected);
  });
});

describe("normalizeEmail", () => {
  test.each([
    ["User+Promo@Example.com", "user@example.com", "lowercases and removes the +tag"],
    ["user@example.com", "user@example.com", "leaves a normal address unchanged"],
    ["  Alice@Example.COM  ", "alice@example.com", "trims surrounding whitespace"],
    ["a+b+c@x.io", "a@x.io", "removes everything from the first + in the local part"],
    ["a+@x.io", "a@x.io", "removes an empty tag"],
    ["+tag@x.io", "+tag@x.io", "keeps a leading + that would leave no mailbox"],
    ["user@ex+ample.com", "user@ex+ample.com", "never touches a + in the domain"],
    ["no-at-sign", "no-at-sign", "only trims and lowercases when there is no @"],
    ["ÄBC+x@Bücher.de", "äbc@bücher.de", "lowercases non-ASCII letters"],
  ])("%p → %p (%s)", (raw, expected) => {
    expect(normalizeEmail(raw)).toBe(expected);
  });
});

describe("isPhoneAddress", () => {
  test.each([
    ["+12015550100", true, "E.164 number"],
    ["+1 (201) 555-0100", true, "formatted international number"],
    ["201.555.0100", true, "dotted national number"],
    ["12345", true, "five-digit short code"],
    ["123", true, "three digits, the minimum"],
    ["+123456789012345", true, "fifteen digits, the maximum"],
    [" +12015550100 ", true, "surrounding whitespace"],
    ["12", false, "two digits, below the minimum"],
    ["+1234567890123456", false, "sixteen digits, above the maximum"],
    ["", false, "empty"],
    ["+", false, "a lone +"],
    ["+ ( ) - .", false, "separators only"],
    ["201-555-01OO", false, "letters in place of digits"],
    ["1+2015550100", false, "a + that is not leading"],
    ["++12015550100", false, "two leading +"],
    ["201_555_0100", false, "underscore is not a separator"],
    ["user@example.com", false, "an email address"],
    ["١٢٣٤٥", false, "non-ASCII digits"],
    ["2015550100#", false, "a trailing symbol"],
    [`+1 201 555 0100${" ".repeat(PHONE_MAX_LENGTH - 15)}`, true, "padded to the raw bound"],
    [`+1${"-".repeat(3000)}2015550100`, false, "ten digits behind 3,000 separators"],
    [`+1 201 555 0100${" ".repeat(PHONE_MAX_LENGTH - 14)}`, false, "padded one past the raw bound"],
  ])("%p → %p (%s)", (raw, expected) => {
    expect(isPhoneAddress(raw)).toBe(expected);
  });
});

describe("isEmailAddress", () => {
  test.each([
    ["a@b.co", true, "the shortest plausible address"],
    ["user@example.com", true, "an ordinary address"],
    ["User+Promo@Example.com", true, "a +tag and capitals"],
    ["first.last@sub.example.co.uk", true, "dots in local part and several domain labels"],
    ["  a@b.co  ", true, "surrounding whitespace is ignored"],
    ["jörg@bücher.de", true, "non-ASCII letters"],
    ["a@b", false, "a domain without a dot"],
    ["a@@b.com", false, "two @ in a row"],
    ["a@b@c.com", false, "two separate @"],
    ["@b.com", false, "an empty local part"],
    ["a@", false, "an empty domain"],
    ["a b@c.com", false, "whitespace in the local part"],
    ["a@c .com", false, "whitespace in the domain"],
    ["a@c\t.com", false, "a tab in the domain"],
    ["a@.com", false, "an empty first domain label"],
    ["a@b.", false, "an empty last domain label"],
    ["a@b..com", false, "an empty middle domain label"],
    ["ab.com", false, "no @ at all"],
    ["", false, "empty"],
    ["+12015550100", false, "a phone number"],
    [`${"a".repeat(64)}@example.com`, true, "a local part of 64 characters, the RFC 5321 maximum"],
    [`${"a".repeat(65)}@example.com`, false, "a local part of 65 characters"],
    [`a@${"b".repeat(EMAIL_MAX_LENGTH - 6)}.com`, true, "254 characters in all, the RFC 5321 maximum"],
    [`a@${"b".repeat(EMAIL_MAX_LENGTH - 5)}.com`, false, "255 characters in all"],
    [`${"a".repeat(3000)}@example.com`, false, "a local part of 3,000 characters"],
  ])("%p → %p (%s)", (raw, expected) => {
    expect(isEmailAddress(raw)).toBe(expected);
  });
});

describe("address problems name the bound that was missed", () => {
  test("an email address over 254 characters is told the total bound", () => {
    expect(emailAddressProblem(`a@${"b".repeat(300)}.com`)).toBe(`must be at most ${EMAIL_MAX_LENGTH} characters`);
  });

  test("an email local part over 64 characters is told the local-part bound", () => {
    expect(emailAddressProblem(`${"a".repeat(65)}@example.com`)).toContain(`at most ${EMAIL_LOCAL_PART_MAX_LENGTH} characters`);
  });

  test("a phone number over the raw bound is told the bound, not the digits rule", () => {
    expect(phoneAddressProblem(`+1${" ".repeat(100)}2015550100`)).toBe(`must be at most ${PHONE_MAX_LENGTH} characters`);
  });

  test("valid addresses have no problem", () => {
    expect(emailAddressProblem("user@example.com")).toBeNull();
    expect(phoneAddressProblem("+1 (201) 555-0100")).toBeNull();
  });
});
