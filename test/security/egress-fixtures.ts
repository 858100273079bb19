import { createEgress, type Egress, type EgressOptions, EgressRefusedError, type Resolver } from "../../src/security/egress.ts";

/** A resolver answering every name with these addresses, counting its calls. */
export function resolvingTo(...addresses: string[]): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const resolve = async (host: string) => {
    calls.push(host);
    return addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };
  return Object.assign(resolve, { calls });
}

/**
 * A guard that may reach a loopback test server: its exact address allowed, plain http allowed, its port
 * allowed. `allowed.test` resolves to the server too.
 */
export function loopbackGuard(port: number, overrides: Partial<EgressOptions> = {}): Egress {
  return createEgress({
    allowlist: ["127.0.0.1", "allowed.test"],
    allowHttp: true,
    ports: [port],
    resolve: resolvingTo("127.0.0.1"),
    ...overrides,
  });
}

/** The EgressRefusedError a promise rejects with; fails the test when it resolves or rejects otherwise. */
export async function refusal(promise: Promise<unknown>): Promise<EgressRefusedError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  if (!(error instanceof EgressRefusedError)) throw new Error(`expected an EgressRefusedError, got ${String(error)}`);
  return error;
}

export const text = (body: Uint8Array) => new TextDecoder().decode(body);
