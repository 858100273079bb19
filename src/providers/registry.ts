/**
 * Which providers exist and which ones each channel tries, in order (SPEC §7): data, not code. The providers
 * come from the config file's `providers` (config.ts); without any, every name a route uses is the built-in mock.
 * Each kind's adapter is built by the `ProviderFactory` (build.ts), so the dispatcher never sees kinds. The
 * default chain is `sms` and `mms` → `sms-mms`, `email` → `email`. A message's chain holds only the providers that
 * can carry it (senders.ts): those that own its sender and whose limits it fits.
 */
import type { Channel } from "../domain/channel.ts";
import type { Routes } from "../domain/provider-routes.ts";
import type { ProviderConfig } from "./config.ts";
import type { ProviderKind } from "./kinds.ts";
import type { Provider } from "./provider.ts";
import { type Capacity, type Carried, carries, kindCapacity, type RouteRefusal, routeRefusal } from "./senders.ts";

export type { ProviderKind };

/** One provider as configured. */
export interface ProviderSpec {
  name: string;
  kind: ProviderKind;
  /** A call that has not answered by then is a transient error (enforced with an AbortSignal). */
  timeoutMs: number;
  /** Most calls per second this process makes to it (token bucket; burst of one second's worth); absent: unlimited. */
  maxPerSecond?: number;
  /** The senders it owns and its limits; absent: it carries anything. */
  capacity?: Capacity;
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
  const configured: readonly Pick<ProviderConfig, "name" | "kind" | "timeoutMs" | "maxPerSecond" | "senders">[] =
    options.providers !== undefined && options.providers.length > 0
      ? options.providers
      : [...new Set(Object.values(options.routes).flat())].map((name) => ({ name, kind: "mock" }));
  return {
    routes: options.routes,
    providers: configured.map((p) => {
      const spec: ProviderSpec = { name: p.name, kind: p.kind, timeoutMs: p.timeoutMs ?? options.timeoutMs };
      const maxPerSecond = p.maxPerSecond ?? options.rates?.get(p.name);
      if (maxPerSecond !== undefined) spec.maxPerSecond = maxPerSecond;
      const capacity: Capacity = { ...kindCapacity(p.kind), ...(p.senders !== undefined ? { senders: p.senders } : {}) };
      if (Object.keys(capacity).length > 0) spec.capacity = capacity;
      return spec;
    }),
  };
}

/** The check the send path makes before storing: why no provider of the route can carry a message, if none can. */
export type RouteCheck = (channel: Channel, message: Carried) => RouteRefusal | undefined;

/** The route check of a configuration, without building any adapter (an API-only instance has none). */
export function routeCheck(config: RegistryConfig): RouteCheck {
  const specs = new Map(config.providers.map((p) => [p.name, p]));
  const chains = Object.fromEntries(
    (Object.keys(config.routes) as Channel[]).map((channel) => [
      channel,
      config.routes[channel].map((name) => ({ name, capacity: specs.get(name)?.capacity ?? {} })),
    ]),
  ) as Record<Channel, { name: string; capacity: Capacity }[]>;
  return (channel, message) => routeRefusal(chains[channel], channel, message);
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
  /** Whether any provider of a channel's chain has senders or limits (else every message gets the whole chain). */
  private readonly selective: Record<Channel, boolean>;

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
    const selective = (channel: Channel) => this.chains[channel].some((p) => p.spec.capacity !== undefined);
    this.selective = { sms: selective("sms"), mms: selective("mms"), email: selective("email") };
  }

  /**
   * The providers a message of `channel` tries, first to last: with `message`, only those that can carry it (own
   * its sender, fit its limits).
   */
  chain(channel: Channel, message?: Carried): readonly RegisteredProvider[] {
    const all = this.chains[channel];
    if (message === undefined || !this.selective[channel]) return all;
    return all.filter((p) => p.spec.capacity === undefined || carries(p.spec.capacity, channel, message));
  }

  all(): RegisteredProvider[] {
    return [...this.byName.values()];
  }
}
