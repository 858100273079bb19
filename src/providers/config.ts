/**
 * The config file's `providers` list and `routes` map: which providers exist, of which kind, with their
 * non-secret settings, and which of them each channel tries in order. They are structured, unlike the flat
 * settings table, so they are read from the config file only (never from flags or the environment).
 *
 * Secrets never sit in the file: they are stored encrypted by `messaging creds` (security/credentials.ts) under
 * the provider's name and a fixed credential name per kind (CREDENTIAL_NAMES, in provider-names.ts), and read at every call.
 */
import { z } from "zod";
import { CHANNELS, type Channel } from "../domain/channel.ts";
import type { Routes } from "../domain/provider-routes.ts";
import { SENDGRID_DEFAULT_BASE_URL } from "./sendgrid/adapter.ts";
import { TWILIO_API_BASE_URL } from "./twilio/adapter.ts";
import { egressUrlProblem } from "../security/egress.ts";
import { CREDENTIAL_NAMES, isProviderName, PROVIDER_KINDS, PROVIDER_NAME, type ProviderKind } from "./kinds.ts";

export { CREDENTIAL_NAMES, isProviderName, PROVIDER_KINDS, type ProviderKind };

interface CommonSettings {
  name: string;
  /** The channels it may carry: the kind's own when not given (Twilio sms and mms, SendGrid and SMTP email). */
  channels: readonly Channel[];
  maxPerSecond?: number;
  timeoutMs?: number;
  baseUrl?: string;
}

export type ProviderConfig = CommonSettings &
  (
    | { kind: "mock" }
    | { kind: "twilio"; accountSid: string; messagingServiceSid?: string; apiKeySid?: string; from?: string }
    | { kind: "sendgrid"; from: string; eventVerificationKey?: string }
    | { kind: "smtp"; host: string; port: number; secure: boolean; requireTls?: boolean; user?: string; from: string }
  );

/** What the config file adds to the flat settings. */
// A type, not an interface, so Config still reads as a record of settings.
export type ProviderSection = {
  /** From the file's `providers`; empty: every provider a route names is the built-in mock (and nothing leaves). */
  providers: readonly ProviderConfig[];
};

const KIND_CHANNELS: Record<ProviderKind, readonly Channel[]> = {
  mock: CHANNELS,
  twilio: ["sms", "mms"],
  sendgrid: ["email"],
  smtp: ["email"],
};

const NAME = PROVIDER_NAME;
/** Whether `text` can name a provider (lower-case letters, digits, - and _). */
const text = z.string().trim().min(1, "must be a non-empty string");
const httpUrl = text.refine((s) => /^https?:\/\//.test(s) && URL.canParse(s), "must be an absolute http or https URL");

const common = {
  name: z.string(),
  kind: z.string(),
  channels: z.array(z.enum(CHANNELS as [Channel, ...Channel[]], { error: "must list sms, mms or email" })).min(1).optional(),
  max_per_second: z.number().positive("must be a positive number").optional(),
  timeout_ms: z.number().int().min(10).max(600000).optional(),
  base_url: httpUrl.optional(),
};

const KIND_SCHEMAS = {
  mock: z.strictObject(common),
  twilio: z
    .strictObject({ ...common, account_sid: text, messaging_service_sid: text.optional(), api_key_sid: text.optional(), from: text.optional() })
    .refine((p) => p.from !== undefined || p.messaging_service_sid !== undefined, "needs from or messaging_service_sid"),
  sendgrid: z.strictObject({ ...common, from: text, event_verification_key: text.optional() }),
  smtp: z.strictObject({
    ...common,
    host: text,
    port: z.number().int().min(1).max(65535),
    secure: z.boolean().default(false),
    require_tls: z.boolean().optional(),
    user: text.optional(),
    from: text,
  }),
} as const;

const routesSchema = z.strictObject(
  Object.fromEntries(CHANNELS.map((c) => [c, z.array(z.string().regex(NAME, "is not a provider name")).min(1, "needs at least one provider")])) as Record<
    Channel,
    z.ZodArray<z.ZodString>
  >,
);

/** The first issue of a zod error as `field: message`. */
const firstIssue = (error: z.ZodError) => {
  const issue = error.issues[0]!;
  return issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message;
};

/** One entry of `providers`, or the reason it is unusable (naming the provider when it has a name). */
function parseProvider(raw: unknown, index: number): ProviderConfig | string {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return `providers[${index}] must be an object`;
  const entry = raw as Record<string, unknown>;
  if (typeof entry.name !== "string" || !NAME.test(entry.name)) {
    return `providers[${index}]: name must be lower-case letters, digits, - and _ (got ${JSON.stringify(entry.name)})`;
  }
  const label = `provider ${entry.name}`;
  if (!PROVIDER_KINDS.includes(entry.kind as ProviderKind)) {
    return `${label}: unknown kind ${JSON.stringify(entry.kind)} (one of ${PROVIDER_KINDS.join(", ")})`;
  }
  const kind = entry.kind as ProviderKind;
  const result = KIND_SCHEMAS[kind].safeParse(raw);
  if (!result.success) return `${label} (${kind}): ${firstIssue(result.error)}`;
  const p = result.data as Record<string, unknown> & z.output<typeof KIND_SCHEMAS.mock>;
  const channels = p.channels ?? KIND_CHANNELS[kind];
  const unfit = channels.find((c) => !KIND_CHANNELS[kind].includes(c));
  if (unfit !== undefined) return `${label} (${kind}): cannot carry ${unfit}`;
  const base = definedOnly({ name: p.name, channels, maxPerSecond: p.max_per_second, timeoutMs: p.timeout_ms, baseUrl: p.base_url });
  const s = (key: string) => p[key] as string;
  switch (kind) {
    case "mock":
      return { ...base, kind };
    case "twilio":
      return { ...base, kind, accountSid: s("account_sid"), ...definedOnly({ messagingServiceSid: s("messaging_service_sid"), apiKeySid: s("api_key_sid"), from: s("from") }) };
    case "sendgrid":
      return { ...base, kind, from: s("from"), ...definedOnly({ eventVerificationKey: s("event_verification_key") }) };
    case "smtp":
      return {
        ...base,
        kind,
        host: s("host"),
        port: p.port as number,
        secure: p.secure as boolean,
        from: s("from"),
        ...definedOnly({ requireTls: p.require_tls as boolean | undefined, user: s("user") }),
      };
  }
}

/** Drops undefined values, so optional properties are absent rather than present and undefined. */
function definedOnly<T extends Record<string, unknown>>(values: T): { [K in keyof T]: Exclude<T[K], undefined> } & CommonSettings {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> } & CommonSettings;
}

/**
 * Reads the file's `providers` and `routes` (either may be absent). Returns them, or the one-line reason they are
 * unusable: a bad entry, an unknown kind, a name used twice, a malformed `routes`.
 */
export function parseProviderFile(rawProviders: unknown, rawRoutes: unknown): { providers: ProviderConfig[]; routes?: Routes } | string {
  const providers: ProviderConfig[] = [];
  if (rawProviders !== undefined) {
    if (!Array.isArray(rawProviders)) return "providers must be a list of providers";
    for (const [index, raw] of rawProviders.entries()) {
      const parsed = parseProvider(raw, index);
      if (typeof parsed === "string") return parsed;
      if (providers.some((p) => p.name === parsed.name)) return `provider ${parsed.name} is defined twice`;
      providers.push(parsed);
    }
  }
  if (rawRoutes === undefined) return { providers };
  const routes = routesSchema.safeParse(rawRoutes);
  if (!routes.success) return `routes.${firstIssue(routes.error)}`;
  return { providers, routes: routes.data };
}

/**
 * With providers configured, every name a route uses must be one of them and able to carry that channel. Without
 * any, the names are mocks (today's behaviour) and anything goes.
 */
export function routesProblem(providers: readonly ProviderConfig[], routes: Routes): string | undefined {
  if (providers.length === 0) return undefined;
  for (const channel of CHANNELS) {
    for (const name of routes[channel]) {
      const provider = providers.find((p) => p.name === name);
      if (!provider) return `the route of ${channel} names provider ${name}, which is not in providers`;
      if (!provider.channels.includes(channel)) return `the route of ${channel} names provider ${name}, which does not carry ${channel}`;
    }
  }
  return undefined;
}

/** The credentials a provider cannot send without (a subset of its kind's CREDENTIAL_NAMES). */
export function requiredSecrets(provider: ProviderConfig): string[] {
  switch (provider.kind) {
    case "mock":
      return [];
    case "twilio":
      return provider.apiKeySid !== undefined ? ["api_key_secret"] : ["auth_token"];
    case "sendgrid":
      return ["api_key"];
    case "smtp":
      return provider.user !== undefined ? ["password"] : [];
  }
}

/**
 * Whether the configured providers can reach their APIs, as one line naming the first that cannot: one the egress
 * guard would refuse. The allowlist is not widened on the operator's behalf: which hosts the service may call stays
 * a decision written in SSRF_ALLOWLIST, and this says exactly what to add. (Whether their credentials are stored is
 * known only once the database is open: security/credential-readiness.ts.)
 */
export function providersProblem(config: ProviderSection & { ssrfAllowlist: readonly string[]; egressAllowHttp: boolean }): string | undefined {
  for (const provider of config.providers) {
    const api = apiBaseUrl(provider);
    const egress = api === undefined ? undefined : egressUrlProblem({ ...providerEgress(config, provider), allowlist: config.ssrfAllowlist }, api);
    if (egress !== undefined) return `provider ${provider.name} (${provider.kind}): ${api} is refused by the egress guard (${egress})`;
  }
  return undefined;
}

/** The HTTP API a provider calls, or undefined for one that calls none over HTTP (the mock, SMTP). */
export function apiBaseUrl(provider: ProviderConfig): string | undefined {
  if (provider.kind === "twilio") return provider.baseUrl ?? TWILIO_API_BASE_URL;
  if (provider.kind === "sendgrid") return provider.baseUrl ?? SENDGRID_DEFAULT_BASE_URL;
  return undefined;
}

/**
 * The egress settings of one provider: the service's, plus the port its `base_url` names, if any. The operator
 * wrote that port for that provider, so it is allowed for that provider's calls only (the host still has to be
 * in SSRF_ALLOWLIST).
 */
export function providerEgress(config: { egressAllowHttp: boolean }, provider: ProviderConfig): { allowHttp: boolean; ports?: number[] } {
  const port = provider.baseUrl === undefined ? "" : new URL(provider.baseUrl).port;
  if (port === "") return { allowHttp: config.egressAllowHttp };
  return { allowHttp: config.egressAllowHttp, ports: [...(config.egressAllowHttp ? [443, 80] : [443]), Number(port)] };
}
