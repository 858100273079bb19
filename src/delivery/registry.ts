/**
 * Which providers exist and which ones each channel tries, in order (SPEC §7): data, not code. Today every
 * provider is the built-in mock; the real adapters of a later issue plug in through `ProviderFactory` without
 * the dispatcher changing. The default chain is `sms` and `mms` → `sms-mms`, `email` → `email`.
 */
import type { Channel } from "../domain/channel.ts";
import type { Routes } from "../domain/provider-routes.ts";
import type { Provider } from "../providers/provider.ts";

export type ProviderKind = "mock";

/** One provider as configured. */
export interface ProviderSpec {
  name: string;
  kind: ProviderKind;
  /** A call that has not answered by then is a transient error (enforced with an AbortSignal). */
  timeoutMs: number;
  /** Most calls per second this process makes to it (token bucket; burst of one second's worth); absent: unlimited. */
  maxPerSecond?: number;
}

/** The registry's data for a configuration: every provider a route names is a mock with the shared timeout. */
export function registryConfig(options: { routes: Routes; timeoutMs: number; rates?: ReadonlyMap<string, number> }): RegistryConfig {
  const names = [...new Set(Object.values(options.routes).flat())];
  return {
    routes: options.routes,
    providers: names.map((name) => {
      const maxPerSecond = options.rates?.get(name);
      return maxPerSecond === undefined
        ? { name, kind: "mock", timeoutMs: options.timeoutMs }
        : { name, kind: "mock", timeoutMs: options.timeoutMs, maxPerSecond };
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
