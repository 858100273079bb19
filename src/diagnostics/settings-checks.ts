import { providersProblem, providerWebhookGaps, type ServiceConfig } from "../providers/config.ts";
import { CHANNELS } from "../domain/channel.ts";
import { canonicalAddress, classifyAddress, isLoopbackHost } from "../security/address-class.ts";
import { inboundWebhookAccess } from "../security/inbound-access.ts";
import { masterKeyCheck } from "./credentials.ts";
import type { CheckResult } from "./result.ts";

/*
 * What `check` can tell from the configuration alone: providers and routes that cannot work, and settings that
 * are legal but leave the service open. Each item is a pure function of the configuration, independent of the
 * others; a setting that is fine says so (`ok`), so the report shows everything that was looked at.
 */

/** One item of the report that needs only the configuration; `check` names it should it throw. */
export interface SettingsCheck {
  check: string;
  run: (config: ServiceConfig) => CheckResult[];
}

const ok = (check: string, message: string): CheckResult => ({ check, status: "ok", message });
const warn = (check: string, message: string): CheckResult => ({ check, status: "warn", message });
const error = (check: string, message: string): CheckResult => ({ check, status: "error", message });

/**
 * The providers: none is legal (every channel goes to the built-in mock) but worth a warning, since nothing a
 * caller sends leaves the machine; one that cannot send (a missing secret, an API the egress guard refuses) is the
 * error `serve` would refuse to start with.
 */
export function providersCheck(config: ServiceConfig): CheckResult[] {
  if (config.providers.length === 0) {
    return [warn("providers", "no providers are configured: every channel uses the built-in mock and nothing leaves this machine")];
  }
  const problem = providersProblem(config);
  if (problem !== undefined) return [error("providers", problem)];
  return [ok("providers", config.providers.map((p) => `${p.name} (${p.kind})`).join(", "))];
}

/**
 * The routes: loading the configuration already refuses a route naming an unknown provider, or one that does
 * not carry the channel; what is left is a provider that no route uses, configured (with its secrets) for nothing.
 */
export function routesCheck(config: ServiceConfig): CheckResult[] {
  const chains = CHANNELS.map((channel) => `${channel} → ${config.deliveryRoutes[channel].join(", ")}`).join("; ");
  const routed = new Set(CHANNELS.flatMap((channel) => config.deliveryRoutes[channel]));
  const unused = config.providers.filter((p) => !routed.has(p.name)).map((p) => p.name);
  if (unused.length > 0) return [warn("routes", `no route uses ${unused.join(", ")}; routes: ${chains}`)];
  return [ok("routes", chains)];
}

/**
 * What the providers' own webhooks need from the configuration: Twilio reports delivery only to the StatusCallback
 * sent with each message, which is built on the public URL (without one, messages stay `sent`); SendGrid's signed
 * events verify only against the configured `event_verification_key` (without one, every event post is a 401).
 * Twilio's auth token, which verifies its webhooks even when an API key sends, is a stored credential: the
 * database items check it.
 */
export function providerWebhooksCheck(config: ServiceConfig): CheckResult[] {
  const gaps = providerWebhookGaps(config.providers, config.publicUrl);
  if (gaps.length > 0) return [warn("provider-webhooks", gaps.join("; "))];
  if (config.providers.some((p) => p.kind === "twilio" || p.kind === "sendgrid")) {
    return [ok("provider-webhooks", "delivery reports can reach this service (status callbacks, signed events)")];
  }
  return [];
}

export function authCheck(config: ServiceConfig): CheckResult[] {
  if (config.auth === "off") return [warn("auth", "MESSAGING_AUTH=off: /api routes accept requests without an API key")];
  return [ok("auth", "/api routes need an API key (`messaging keys list` shows them)")];
}

export function inboundWebhooksCheck(config: ServiceConfig): CheckResult[] {
  const access = inboundWebhookAccess(config);
  return [access.openToAnyone ? warn("inbound-webhooks", access.description) : ok("inbound-webhooks", access.description)];
}

export function securityHeadersCheck(config: ServiceConfig): CheckResult[] {
  if (!config.securityHeadersEnabled) {
    return [warn("security-headers", "SECURITY_HEADERS_ENABLED=false: responses lack the security headers")];
  }
  return [ok("security-headers", "every response carries the security headers")];
}

/**
 * The public URL and HSTS: a plain-http public URL sends keys and message bodies in clear, and an https one with
 * MESSAGING_HSTS=false lets a browser be downgraded to http on its next visit. Without a public URL there is
 * nothing to judge (the service may sit behind a proxy that does TLS and HSTS itself).
 */
export function transportCheck(config: ServiceConfig): CheckResult[] {
  if (config.publicUrl === undefined) return [];
  if (config.publicUrl.startsWith("http://")) {
    return [warn("public-url", "MESSAGING_PUBLIC_URL is plain http; serve the API over TLS")];
  }
  if (config.hsts === false) {
    return [warn("hsts", "MESSAGING_HSTS=false behind an https MESSAGING_PUBLIC_URL: browsers may be downgraded to http")];
  }
  return [ok("hsts", "Strict-Transport-Security is sent (https public URL)")];
}

/**
 * Why one SSRF_ALLOWLIST entry lets outbound requests reach more than a named public host, or undefined.
 * An address entry is admitted whatever its class (that is how an operator allows a relay on the private
 * network), so a non-public one is worth a second look; `*` is no pattern to the guard (`.example.com` is how
 * subdomains are allowed), and a suffix of one label admits a whole top-level domain.
 */
export function allowlistEntryProblem(entry: string): string | undefined {
  if (entry.includes("*")) return `${entry} looks like a wildcard: the guard reads it literally; allow subdomains as .example.com`;
  if (entry.includes("/")) return `${entry} is a range: the guard admits exact addresses only, and a range there suggests a private network`;
  const address = canonicalAddress(entry);
  if (address !== undefined) {
    const kind = classifyAddress(address);
    return kind === "public" ? undefined : `${entry} is a ${kind.replace("_", "-")} address`;
  }
  const name = entry.replace(/^\./, "").replace(/\.$/, "").toLowerCase();
  if (name === "localhost" || name.endsWith(".localhost")) return `${entry} names this machine`;
  if (entry.startsWith(".") && !name.includes(".")) return `${entry} admits every host under a whole top-level domain`;
  return undefined;
}

export function egressAllowlistCheck(config: ServiceConfig): CheckResult[] {
  const problems = config.ssrfAllowlist.map(allowlistEntryProblem).filter((p) => p !== undefined);
  if (problems.length > 0) return [warn("egress-allowlist", `SSRF_ALLOWLIST reaches past public hosts: ${problems.join("; ")}`)];
  if (config.ssrfAllowlist.length === 0) return [ok("egress-allowlist", "SSRF_ALLOWLIST is empty: outbound requests reach no host")];
  return [ok("egress-allowlist", `outbound requests reach ${config.ssrfAllowlist.join(", ")} only`)];
}

/**
 * /metrics, /docs and /openapi.json on an address other machines can reach: they need a key unless
 * MESSAGING_OPS_AUTH=off or auth is off altogether. Open, they show traffic and the whole API to anyone.
 */
export function opsEndpointsCheck(config: ServiceConfig): CheckResult[] {
  if (isLoopbackHost(config.host)) return [ok("ops-endpoints", `/metrics and /docs are reachable from this machine only (HOST=${config.host})`)];
  const open = config.auth === "off" ? "MESSAGING_AUTH=off" : config.opsAuth === "off" ? "MESSAGING_OPS_AUTH=off" : undefined;
  if (open !== undefined) {
    return [warn("ops-endpoints", `${open} on a public bind (HOST=${config.host}): /metrics, /docs and /openapi.json answer anyone without a key`)];
  }
  return [ok("ops-endpoints", `/metrics, /docs and /openapi.json need an API key on HOST=${config.host}`)];
}

/** The configuration items of `messaging check`, in the order they are reported. */
export const SETTINGS_CHECKS: readonly SettingsCheck[] = [
  { check: "providers", run: providersCheck },
  { check: "routes", run: routesCheck },
  { check: "master-key", run: masterKeyCheck },
  { check: "provider-webhooks", run: providerWebhooksCheck },
  { check: "auth", run: authCheck },
  { check: "inbound-webhooks", run: inboundWebhooksCheck },
  { check: "security-headers", run: securityHeadersCheck },
  { check: "hsts", run: transportCheck },
  { check: "egress-allowlist", run: egressAllowlistCheck },
  { check: "ops-endpoints", run: opsEndpointsCheck },
];
