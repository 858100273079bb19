// One state per request, shared by every plugin that asks for it (http/request-state.ts).
import { describe, expect, test } from "bun:test";
import { beginRequest, requestState } from "../../src/http/request-state.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("request state", () => {
  test("begun once, the same object for every later reader of that request, and another for another request", () => {
    const first = new Request("http://127.0.0.1/healthz?x=1");
    const second = new Request("http://127.0.0.1/healthz");
    const state = beginRequest(first);
    expect(requestState(first)).toBe(state);
    expect(requestState(first)).toBe(state);
    expect(state.path).toBe("/healthz");
    expect(requestState(second)).not.toBe(state);
    expect(requestState(second).id).not.toBe(state.id);
  });

  test("a request no hook began gets its state on first read, kept from then on", () => {
    const request = new Request("http://127.0.0.1/api/messages");
    const state = requestState(request);
    expect(state.id).toMatch(UUID);
    expect(requestState(request)).toBe(state);
  });

  test.each([
    ["a sane inbound id is kept", "req-42.a_b:c@d/e+f=g", true],
    ["an id with a quote is replaced", 'bad"id', false],
    ["an id too long is replaced", "x".repeat(129), false],
  ])("%s", (_, inbound, kept) => {
    const state = beginRequest(new Request("http://127.0.0.1/healthz", { headers: { "x-request-id": inbound } }));
    if (kept) expect(state.id).toBe(inbound);
    else expect(state.id).toMatch(UUID);
  });

  test("the state is not an enumerable part of the request", () => {
    const request = new Request("http://127.0.0.1/healthz");
    beginRequest(request);
    expect(Object.keys(request)).toEqual([]);
  });
});
