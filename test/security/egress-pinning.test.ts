import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { createEgress } from "../../src/security/egress.ts";
import { loopbackGuard, refusal, resolvingTo, text } from "./egress-fixtures.ts";

/**
 * The connection goes to the address the guard checked, and nowhere else: not to what a second DNS
 * lookup (by Bun, or by our resolver) would answer. Two servers share a port on two loopback addresses;
 * which one answers tells where the connection went.
 */

const checked = Bun.serve({ hostname: "127.0.0.2", port: 0, fetch: (req) => new Response(`checked ${req.headers.get("host")}`) });
const PORT = checked.port!;
const other = Bun.serve({ hostname: "127.0.0.1", port: PORT, fetch: () => new Response("other") });

const FIXTURES = join(import.meta.dir, "fixtures");
const cert = await Bun.file(join(FIXTURES, "allowed.test.crt")).text();
const tlsServer = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  tls: { cert, key: await Bun.file(join(FIXTURES, "allowed.test.key")).text() },
  fetch: (req) => new Response(`tls ${req.headers.get("host")}`),
});

afterAll(() => {
  checked.stop(true);
  other.stop(true);
  tlsServer.stop(true);
});

describe("DNS rebinding: the name is resolved once and the connection pinned to that answer", () => {
  test("a resolver answering an allowed address first and a private one after: the connection goes to the first", async () => {
    let calls = 0;
    const rebinding = async () => [{ address: ++calls === 1 ? "127.0.0.2" : "127.0.0.1", family: 4 }];
    const egress = createEgress({ allowlist: ["rebind.test", "127.0.0.2"], allowHttp: true, ports: [PORT], resolve: rebinding });

    const response = await egress.request(`http://rebind.test:${PORT}/`);

    expect(text(response.body)).toBe(`checked rebind.test:${PORT}`);
    expect(calls).toBe(1);
    // The second answer was there to be had, and would have been refused.
    expect((await refusal(egress.check(`http://rebind.test:${PORT}/`))).reason).toBe("private_address");
  });

  test("a name the system resolves elsewhere (localhost → 127.0.0.1) still reaches the checked 127.0.0.2: Bun does not look it up again", async () => {
    const resolve = resolvingTo("127.0.0.2");
    const egress = createEgress({ allowlist: ["localhost", "127.0.0.2"], allowHttp: true, ports: [PORT], resolve });

    const response = await egress.request(`http://localhost:${PORT}/`);

    expect(text(response.body)).toBe(`checked localhost:${PORT}`);
    expect(resolve.calls).toEqual(["localhost"]);
  });

  test("an IPv6 answer is connected to as a bracketed literal, however the resolver spelled it", async () => {
    const v6 = Bun.serve({ hostname: "::1", port: 0, fetch: (req) => new Response(`v6 ${req.headers.get("host")}`) });
    try {
      const resolve = resolvingTo("0:0:0:0:0:0:0:1");
      const egress = createEgress({ allowlist: ["six.test", "::1"], allowHttp: true, ports: [v6.port!], resolve });
      expect(text((await egress.request(`http://six.test:${v6.port}/`)).body)).toBe(`v6 six.test:${v6.port}`);
      expect(text((await egress.request(`http://[::1]:${v6.port}/`)).body)).toBe(`v6 [::1]:${v6.port}`);
    } finally {
      v6.stop(true);
    }
  });

  test("the Host header is the URL's, whatever the caller sets", async () => {
    const egress = createEgress({ allowlist: ["allowed.test", "127.0.0.2"], allowHttp: true, ports: [PORT], resolve: resolvingTo("127.0.0.2") });
    const response = await egress.request(`http://allowed.test:${PORT}/`, { headers: { Host: "internal.test" } });
    expect(text(response.body)).toBe(`checked allowed.test:${PORT}`);
  });
});

describe("TLS to a pinned address is verified against the name, not the address", () => {
  const tlsPort = tlsServer.port!;
  const egress = createEgress({
    allowlist: ["allowed.test", "other.test", "127.0.0.1"],
    allowHttp: false,
    ports: [tlsPort],
    resolve: resolvingTo("127.0.0.1"),
    ca: cert,
  });

  test("https://allowed.test reaches the server at 127.0.0.1 whose certificate names allowed.test", async () => {
    const response = await egress.request(`https://allowed.test:${tlsPort}/`);
    expect(response.status).toBe(200);
    expect(text(response.body)).toBe(`tls allowed.test:${tlsPort}`);
  });

  test("https://other.test at the same address is refused: the certificate does not name it, even with a verified connection to that address open", async () => {
    // Bun keeps the connection of the first request alive; it must not be reused for another name.
    expect((await egress.request(`https://allowed.test:${tlsPort}/`)).status).toBe(200);
    const error = await refusal(egress.request(`https://other.test:${tlsPort}/`));
    expect(error.reason).toBe("connection_failed");
    expect(String((error.cause as { code?: string }).code)).toContain("ALTNAME");
  });

  test("the IP literal itself is refused too: the certificate names allowed.test, not 127.0.0.1", async () => {
    expect((await refusal(egress.request(`https://127.0.0.1:${tlsPort}/`))).reason).toBe("connection_failed");
  });

  test("without the test CA, the self-signed certificate is refused (verification is on)", async () => {
    const untrusting = loopbackGuard(tlsPort, { allowHttp: false });
    expect((await refusal(untrusting.request(`https://allowed.test:${tlsPort}/`))).reason).toBe("connection_failed");
  });
});
