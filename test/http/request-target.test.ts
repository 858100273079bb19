import { describe, expect, test } from "bun:test";
import { requestPath } from "../../src/http/request-target.ts";

describe("requestPath", () => {
  test.each([
    ["http://localhost/api/conversations?page=2", "/api/conversations", "an absolute URL, query dropped"],
    ["http://x/healthz", "/healthz", "a one-letter host (Elysia's loose path keeps the host here)"],
    ["https://msg.example.com:8443/api/messages/1#frag", "/api/messages/1", "https with a port and a fragment"],
    ["http://localhost", "/", "no path at all is the root"],
    ["http://localhost?x=1", "/", "only a query"],
    ["http://localhost#top", "/", "only a fragment"],
    ["HTTPS://Example.COM/Api?x", "/Api", "a scheme in capitals"],
    ["/api/x?y=1#z", "/api/x", "an origin-form target with a query"],
    ["/api/conversations", "/api/conversations", "a bare origin-form target (how CONNECT /x arrives)"],
    ["user@example.com:443", null, "an authority-form target is no path"],
    ["127.0.0.1:5432", null, "an address and port"],
    ["*", null, "the asterisk form"],
    ["", null, "nothing"],
  ])("%p → %p (%s)", (url, expected) => {
    expect(requestPath(url)).toBe(expected);
  });
});
