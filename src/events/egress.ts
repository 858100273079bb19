import type { Config } from "../config/index.ts";
import { type Egress, type EgressOptions, egressFromConfig } from "../security/egress.ts";

/**
 * The egress guard for event endpoints. Everything the provider guard checks applies (allowlist, resolved
 * addresses, no private ranges unless listed, pinned connections), with one difference: a URL's own explicit port
 * is allowed, as a provider's `base_url` port is (config/providers.ts): an admin named it when registering the
 * endpoint, and receivers often listen on ports other than 443. One guard per port, made when first needed.
 */
export function eventEgress(config: Pick<Config, "ssrfAllowlist" | "egressAllowHttp">, overrides: Partial<EgressOptions> = {}): Egress {
  const defaults = config.egressAllowHttp ? [443, 80] : [443];
  const byPort = new Map<string, Egress>();
  const guardFor = (url: string): Egress => {
    const port = URL.parse(url)?.port ?? "";
    let guard = byPort.get(port);
    if (!guard) {
      guard = egressFromConfig(config, { ...overrides, ports: port === "" ? defaults : [...defaults, Number(port)] });
      byPort.set(port, guard);
    }
    return guard;
  };
  return {
    check: (url) => guardFor(url).check(url),
    request: (url, init) => guardFor(url).request(url, init),
  };
}
