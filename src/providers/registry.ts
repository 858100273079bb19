/**
 * Which providers exist and which ones each channel tries, in order (SPEC §7): data, not code. The providers
 * come from the config file's `providers` (src/config/providers.ts); without any, every name a route uses is the
 * built-in mock. Each kind's adapter is built by the `ProviderFactory`, so the dispatcher never sees kinds. The
 * default chain is `sms` and `mms` → `sms-mms`, `email` → `email`.
 */
import type { ProviderConfig, ProviderKind } from "./config.ts";
import type { Channel } from "../domain/channel.ts";
import type { Routes } from "../domain/provider-routes.ts";
import type { Provider } from "./provider.ts";

export type { ProviderKind };

/** One provider as configured. */
export interface ProviderSpec {
  name: string;
  kind: ProviderKind;
  /** A call that has not answered by then is a transient error (enforced with an AbortSignal). */
  timeoutMs: number;
  /** Most calls per second this process makes to it (token bucket; burst of one second's worth); absent: unlimited. */
  maxPerSecond?: number;
}

/**
 * The registry's data for a configuration: the configured providers, or without any, every provider a route names
 * as a mock. A provider's own `timeout_ms` and `max_per_second` win over the shared timeout and the rates setting.
 */
export function registryConfig(options: {
  routes: Routes;
  timeoutMs: number;
  rates?: ReadonlyMap<string, number>;
  providers?: readonly ProviderConfig[];
}): RegistryConfig {
  const configured: readonly Pick<ProviderConfig, "name" | "kind" | "timeoutMs" | "maxPerSecond">[] =
    options.providers !== undefined && options.providers.length > 0
      ? options.providers
      : [...new Set(Object.values(options.routes).flat())].map((name) => ({ name, kind: "mock" }));
  return {
    routes: options.routes,
    providers: configured.map((p) => {
      const spec: ProviderSpec = { name: p.name, kind: p.kind, timeoutMs: p.timeoutMs ?? options.timeoutMs };
      const maxPerSecond = p.maxPerSecond ?? options.rates?.get(p.name);
      return maxPerSecond === undefined ? spec : { ...spec, maxPerSecond };
    }),
  };
}

export interface RegistryConfig {
  providers: readonly ProviderSpec[];
  routes: Routes;
}

export type ProviderFactory = (spec: ProviderSpec) => Provider;

export interface RegisteredProvider {
  spec: ProviderSpec;
  provider: Provider;
}

/** The providers built from a configuration, and each channel's chain of them. */
export class ProviderRegistry {
  private readonly byName = new Map<string, RegisteredProvider>();
  private readonly chains: Record<Channel, RegisteredProvider[]>;

  constructor(config: RegistryConfig, factory: ProviderFactory) {
    for (const spec of config.providers) {
      if (this.byName.has(spec.name)) throw new Error(`provider ${spec.name} is defined twice`);
      this.byName.set(spec.name, { spec, provider: factory(spec) });
    }
    const chain = (channel: Channel) =>
      config.routes[channel].map((name) => {
        const found = this.byName.get(name);
        if (!found) throw new Error(`the route of ${channel} names provider ${name}, which is not defined`);
        return found;
      });
    this.chains = { sms: chain("sms"), mms: chain("mms"), email: chain("email") };
  }

  /** The providers a message of `channel` tries, first to last. */
  chain(channel: Channel): readonly RegisteredProvider[] {
    return this.chains[channel];
  }

  all(): RegisteredProvider[] {
    return [...this.byName.values()];
  }
}
