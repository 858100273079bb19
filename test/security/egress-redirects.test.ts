import { afterAll, describe, expect, test } from "bun:test";
import { createEgress, type EgressRefusal } from "../../src/security/egress.ts";
import { loopbackGuard, refusal, resolvingTo, text } from "./egress-fixtures.ts";

/** Redirects are followed by the guard, one hop at a time, and every hop is checked like the first URL. */

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const url = new URL(req.url);
    const hops = url.pathname.match(/^\/hop\/(\d+)$/);
    if (hops) {
      const left = Number(hops[1]);
      return left === 0 ? new Response("arrived") : Response.redirect(`/hop/${left - 1}`, 302);
    }
    if (url.pathname === "/to") {
      const location = url.searchParams.get("location");
      return new Response(null, { status: Number(url.searchParams.get("status") ?? 302), headers: location ? { location } : {} });
    }
    const seen = { method: req.method, body: await req.text(), authorization: req.headers.get("authorization"), host: req.headers.get("host") };
    return Response.json(seen);
  },
});
const PORT = server.port!;
const BASE = `http://127.0.0.1:${PORT}`;

// Listens where a redirect must never lead: it counts what reaches it.
let internalHits = 0;
const internal = Bun.serve({ hostname: "127.0.0.2", port: PORT, fetch: () => (internalHits++, new Response("internal")) });

afterAll(() => {
  server.stop(true);
  internal.stop(true);
});

const to = (location: string, status = 302) => `${BASE}/to?status=${status}&location=${encodeURIComponent(location)}`;

describe("how many redirects", () => {
  test.each([[1], [2], [3]])("a chain of %d is followed to the end", async (hops) => {
    const response = await loopbackGuard(PORT).request(`${BASE}/hop/${hops}`);
    expect(response.status).toBe(200);
    expect(text(response.body)).toBe("arrived");
    expect(response.url).toBe(`${BASE}/hop/0`);
  });

  test("a chain of 4 is refused: too_many_redirects", async () => {
    expect((await refusal(loopbackGuard(PORT).request(`${BASE}/hop/4`))).reason).toBe("too_many_redirects");
  });

  test("maxRedirects: 0 refuses the first redirect", async () => {
    expect((await refusal(loopbackGuard(PORT, { maxRedirects: 0 }).request(`${BASE}/hop/1`))).reason).toBe("too_many_redirects");
  });
});

describe("where a redirect may lead: every hop is checked again", () => {
  test.each<[string, string, EgressRefusal]>([
    ["file:", "file:///etc/passwd", "scheme"],
    ["gopher:", "gopher://127.0.0.1:6379/_FLUSHALL", "scheme"],
    ["data:", "data:text/plain,hello", "scheme"],
    ["ftp:", "ftp://127.0.0.1/", "scheme"],
    ["another loopback address", `http://127.0.0.2:${PORT}/`, "host_not_allowed"],
    ["the metadata address", "http://169.254.169.254/latest/meta-data/", "host_not_allowed"],
    ["a decimal spelling of a loopback address", `http://2130706434:${PORT}/`, "host_not_allowed"],
    ["an allowed host on another port", "http://127.0.0.1:22/", "port"],
    ["credentials in the Location", `http://user:pw@127.0.0.1:${PORT}/`, "userinfo"],
  ])("a redirect to %s is refused (%s)", async (_name, location, reason) => {
    const hitsBefore = internalHits;
    expect((await refusal(loopbackGuard(PORT).request(to(location)))).reason).toBe(reason);
    expect(internalHits).toBe(hitsBefore);
  });

  test("a redirect to an allowed name that resolves to a private address is refused, and never connected to", async () => {
    const resolve = async (host: string) => [{ address: host === "allowed.test" ? "127.0.0.1" : "127.0.0.2", family: 4 }];
    const egress = createEgress({ allowlist: ["127.0.0.1", "allowed.test", "internal.test"], allowHttp: true, ports: [PORT], resolve });
    const error = await refusal(egress.request(to(`http://internal.test:${PORT}/`)));
    expect(error.reason).toBe("private_address");
    expect(error.target).toBe("127.0.0.2");
    expect(internalHits).toBe(0);
  });

  test("each hop resolves its name again (and is pinned to that answer)", async () => {
    const resolve = resolvingTo("127.0.0.1");
    const egress = loopbackGuard(PORT, { resolve });
    const response = await egress.request(`http://allowed.test:${PORT}/to?location=${encodeURIComponent(`http://allowed.test:${PORT}/echo`)}`);
    expect(JSON.parse(text(response.body)).host).toBe(`allowed.test:${PORT}`);
    expect(resolve.calls).toEqual(["allowed.test", "allowed.test"]);
  });
});

describe("what a redirect carries", () => {
  test("303 turns a POST into a GET without its body", async () => {
    const response = await loopbackGuard(PORT).request(to("/echo", 303), { method: "POST", body: "payload" });
    expect(JSON.parse(text(response.body))).toMatchObject({ method: "GET", body: "" });
  });

  test("307 and 308 repeat the POST with its body", async () => {
    for (const status of [307, 308]) {
      const response = await loopbackGuard(PORT).request(to("/echo", status), { method: "POST", body: "payload" });
      expect(JSON.parse(text(response.body))).toMatchObject({ method: "POST", body: "payload" });
    }
  });

  test("Authorization follows a redirect on the same origin", async () => {
    const response = await loopbackGuard(PORT).request(to("/echo"), { headers: { authorization: "Bearer provider-secret" } });
    expect(JSON.parse(text(response.body)).authorization).toBe("Bearer provider-secret");
  });

  test("Authorization is dropped on a redirect to another origin", async () => {
    const response = await loopbackGuard(PORT).request(to(`http://allowed.test:${PORT}/echo`), {
      headers: { authorization: "Bearer provider-secret" },
    });
    expect(JSON.parse(text(response.body))).toMatchObject({ authorization: null, host: `allowed.test:${PORT}` });
  });

  test("a 3xx without a Location is an answer, not a redirect", async () => {
    const response = await loopbackGuard(PORT).request(`${BASE}/to?status=302`);
    expect(response.status).toBe(302);
  });
});
