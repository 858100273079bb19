// Reading the delivery routes and provider rates from their settings: pure parsing, so config can use it.
import type { Channel } from "./channel.ts";

/** Per channel, the names of the providers to try, first to last (failover). */
export type Routes = Record<Channel, readonly string[]>;

/** A provider's name: lower-case letters, digits, `-` and `_`, starting with a letter or digit. */
export const PROVIDER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export const DEFAULT_ROUTES = "sms=sms-mms;mms=sms-mms;email=email";

/**
 * Reads the routes setting (`sms=primary,backup;mms=primary;email=email`): every channel must be named, each
 * with at least one provider. Returns the routes or the reason they are unusable, for the config loader.
 */
export function parseRoutes(text: string): Routes | string {
  const routes: Partial<Record<Channel, string[]>> = {};
  for (const part of text.split(";").map((p) => p.trim()).filter(Boolean)) {
    const [channel, chain, extra] = part.split("=").map((s) => s.trim());
    if (extra !== undefined || !channel || !chain) return `"${part}" is not channel=provider[,provider…]`;
    if (channel !== "sms" && channel !== "mms" && channel !== "email") return `"${channel}" is not a channel (sms, mms, email)`;
    if (routes[channel]) return `channel ${channel} is routed twice`;
    const names = chain.split(",").map((n) => n.trim());
    const bad = names.find((n) => !PROVIDER_NAME.test(n));
    if (bad !== undefined) return `"${bad}" is not a provider name (lower-case letters, digits, - and _)`;
    if (new Set(names).size !== names.length) return `channel ${channel} names a provider twice`;
    routes[channel] = names;
  }
  for (const channel of ["sms", "mms", "email"] as const) {
    if (!routes[channel]) return `channel ${channel} has no route`;
  }
  return routes as Routes;
}

/**
 * Reads per-provider rate limits (`sms-mms=1,email=50`): messages per second, a positive number.
 * Returns the map or the reason it is unusable.
 */
export function parseRates(text: string): Map<string, number> | string {
  const rates = new Map<string, number>();
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [name, rate, extra] = part.split("=").map((s) => s.trim());
    const value = Number(rate);
    if (extra !== undefined || !name || !rate || !/^\d+(\.\d+)?$/.test(rate) || !(value > 0)) {
      return `"${part}" is not provider=messages-per-second`;
    }
    rates.set(name, value);
  }
  return rates;
}
