import { describe, expect, test } from "bun:test";
import { attachmentUrlProblem } from "../../src/domain/attachment-url";

const NOT_HTTP = "must be an absolute http or https URL";
const MAX = 2048;

describe("attachmentUrlProblem", () => {
  test.each([
    ["https://example.com/a.jpg", "an https URL"],
    ["http://example.com/a.jpg", "an http URL"],
    ["HTTPS://EXAMPLE.COM/A.JPG", "an upper-case scheme"],
    ["https://cdn.example.com:8443/p/a.png?x=1&y=2#frag", "a port, query and fragment"],
    ["https://127.0.0.1/a.png", "an IPv4 host"],
    ["https://[::1]/a.png", "an IPv6 host"],
    ["https://bücher.de/bild.png", "an internationalized host"],
    ["https://user:pw@example.com/a.png", "credentials in the URL"],
  ])("accepts %p (%s)", (url) => {
    expect(attachmentUrlProblem(url, MAX)).toBeNull();
  });

  test.each<[unknown, string, string]>([
    [42, "must be a string", "a number"],
    [null, "must be a string", "null"],
    [undefined, "must be a string", "undefined"],
    [{ url: "https://x.io" }, "must be a string", "an object"],
    ["", NOT_HTTP, "an empty string"],
    ["example.com/a.jpg", NOT_HTTP, "a URL without a scheme"],
    ["/images/a.jpg", NOT_HTTP, "a relative path"],
    ["//example.com/a.jpg", NOT_HTTP, "a protocol-relative URL"],
    ["ftp://example.com/a.jpg", NOT_HTTP, "an ftp URL"],
    ["file:///etc/passwd", NOT_HTTP, "a file URL"],
    ["data:image/png;base64,AAAA", NOT_HTTP, "a data URL"],
    ["javascript:alert(1)", NOT_HTTP, "a javascript URL"],
    ["http:example.com", NOT_HTTP, "http without // (the parser would repair it)"],
    ["http:/example.com", NOT_HTTP, "http with one slash"],
    ["https://", NOT_HTTP, "a scheme without a host"],
    ["https:///a.jpg", NOT_HTTP, "a third slash (the parser would take a.jpg as the host)"],
    ["https://\\example.com/a.jpg", NOT_HTTP, "a backslash before the host"],
    ["https:\\\\example.com/a.jpg", NOT_HTTP, "backslashes instead of slashes"],
    ["https://exa mple.com/a.jpg", "must not contain whitespace or control characters", "a space in the host"],
    [" https://example.com/a.jpg", "must not contain whitespace or control characters", "leading whitespace"],
    ["https://example.com/a\n.jpg", "must not contain whitespace or control characters", "a newline"],
    ["https://example.com/a\u0000.jpg", "must not contain whitespace or control characters", "a NUL byte"],
    ["https://exa%mple.com/", NOT_HTTP, "an invalid host"],
  ])("rejects %p with %p (%s)", (url, reason) => {
    expect(attachmentUrlProblem(url, MAX)).toBe(reason);
  });

  const prefix = "https://example.com/";
  test.each([
    [MAX - 1, null],
    [MAX, null],
    [MAX + 1, `must be at most ${MAX} characters`],
  ])("a URL of %p characters → %p", (length, expected) => {
    const url = prefix + "a".repeat(length - prefix.length);
    expect(url.length).toBe(length);
    expect(attachmentUrlProblem(url, MAX)).toBe(expected);
  });

  test("the length limit is the caller's", () => {
    expect(attachmentUrlProblem("https://example.com/abc", 10)).toBe("must be at most 10 characters");
  });
});
