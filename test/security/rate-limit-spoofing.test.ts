import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, type TestApp } from "../helpers/app.ts";

// Attacks on the per-IP rate limit through a real listener, so the peer address is the socket's (app.handle
// has no socket). The test client connects from 127.0.0.1; each describe trusts it or not.

interface Served {
  t: TestApp;
  url: string;
}

async function serve(t: TestApp): Promise<Served> {
  t.app.listen({ port: 0, hostname: "127.0.0.1" });
  const server = t.app.server;
  if (!server) throw new Error("the app did not start listening");
  return { t, url: `http://127.0.0.1:${server.port}` };
}

async function stop(s: Served | undefined): Promise<void> {
  await s?.t.app.stop(true);
  await s?.t.close();
}

/** Statuses of GET /api/conversations sent with each X-Forwarded-For value in turn. */
async function statuses(s: Served, forwarded: (string | string[])[]): Promise<number[]> {
  const out: number[] = [];
  for (const xff of forwarded) {
    const headers = new Headers();
    for (const value of [xff].flat()) headers.append("x-forwarded-for", value);
    const res = await fetch(`${s.url}/api/conversations`, { headers });
    await res.arrayBuffer();
    out.push(res.status);
  }
  return out;
}

describe("an untrusted peer (no trusted proxies, limit 3/min)", () => {
  let s: Served | undefined;
  beforeAll(async () => {
    s = await serve(await buildTestApp({ config: { rateLimitPerIpPerMin: 3 } }));
  });
  afterAll(() => stop(s));

  test("5 requests each forging a different X-Forwarded-For all count against the socket address: 3 served, then 429", async () => {
    const forged = ["1.1.1.1", "2.2.2.2", "3.3.3.3, 127.0.0.1", "::1", "4.4.4.4, 5.5.5.5"];
    expect(await statuses(s!, forged)).toEqual([200, 200, 200, 429, 429]);
  });
});

describe("a peer that is not in the trusted range (MESSAGING_TRUSTED_PROXIES=10.0.0.0/8, limit 3/min)", () => {
  let s: Served | undefined;
  beforeAll(async () => {
    s = await serve(await buildTestApp({ config: { rateLimitPerIpPerMin: 3, trustedProxies: ["10.0.0.0/8"] } }));
  });
  afterAll(() => stop(s));

  test("claiming a chain through our proxies does not make its X-Forwarded-For believed", async () => {
    const forged = ["1.1.1.1, 10.0.0.1", "2.2.2.2, 10.0.0.1", "3.3.3.3, 10.0.0.1", "4.4.4.4, 10.0.0.1"];
    expect(await statuses(s!, forged)).toEqual([200, 200, 200, 429]);
  });
});

describe("behind a trusted proxy (MESSAGING_TRUSTED_PROXIES=127.0.0.0/8, limit 3/min)", () => {
  let s: Served | undefined;
  beforeAll(async () => {
    s = await serve(await buildTestApp({ config: { rateLimitPerIpPerMin: 3, trustedProxies: ["127.0.0.0/8"] } }));
  });
  afterAll(() => stop(s));

  test("the right-most untrusted hop is the client: forging left-most entries does not escape its limit", async () => {
    const forged = ["1.1.1.1, 198.51.100.1", "2.2.2.2, 198.51.100.1", "3.3.3.3, 198.51.100.1", "4.4.4.4, 198.51.100.1"];
    expect(await statuses(s!, forged)).toEqual([200, 200, 200, 429]);
  });

  test("another client behind the same proxy has its own budget", async () => {
    expect(await statuses(s!, ["198.51.100.2"])).toEqual([200]);
  });

  test("several X-Forwarded-For headers are one list: the forged first header does not help", async () => {
    const forged = ["9.9.9.9", "8.8.8.8", "7.7.7.7", "6.6.6.6"].map((f) => [f, "198.51.100.3"]);
    expect(await statuses(s!, forged)).toEqual([200, 200, 200, 429]);
  });

  test("garbage hops stop the walk at the proxy: they share the proxy's budget rather than choosing one", async () => {
    expect(await statuses(s!, ["garbage-1", "garbage-2", "[::1]:80", "1.2.3.4:5"])).toEqual([200, 200, 200, 429]);
  });
});
