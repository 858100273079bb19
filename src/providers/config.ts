/**
 * The config file's `providers` list, read into typed providers, and the checks that need them: which providers
 * exist, of which kind, with their non-secret settings and the senders they own. The configuration module reads
 * the file and the routes (src/config/load.ts) but not the providers' entries: each kind's own keys are in its
 * folder (twilio/config.ts, sendgrid/config.ts, smtp/config.ts), and this file joins them to what all share.
 *
 * Secrets never sit in the file: they are stored encrypted by `messaging creds` (security/credentials.ts) under
 * the provider's name and a fixed credential name per kind (CREDENTIAL_NAMES, in kinds.ts), and read at every call.
 */
import { z } from "zod";
import { type Config, ConfigError, type ConfigSources, loadConfig } from "../config/index.ts";
import { CHANNELS, type Channel } from "../domain/channel.ts";
import { normalizePhone, phoneAddressProblem, emailAddressProblem } from "../domain/address.ts";
import { parseMailbox } from "../domain/mailbox.ts";
import { PROVIDER_NAME, type Routes } from "../domain/provider-routes.ts";
import { egressUrlProblem } from "../security/egress.ts";
import { CREDENTIAL_NAMES, isProviderName, PROVIDER_KINDS, type ProviderKind } from "./kinds.ts";
import { readSendGrid, SENDGRID_CHANNELS, SENDGRID_DEFAULT_BASE_URL, type SendGridSettings, sendgridKeys, sendgridSecrets, sendgridWebhookGap } from "./sendgrid/config.ts";
import { readSmtp, SMTP_CHANNELS, type SmtpSettings, smtpKeys, smtpSecrets } from "./smtp/config.ts";
import { readTwilio, TWILIO_API_BASE_URL, TWILIO_CHANNELS, type TwilioSettings, twilioKeys, twilioProblem, twilioSecrets, twilioWebhookGap } from "./twilio/config.ts";

export { twilioUnverifiable } from "./twilio/config.ts";

export { CREDENTIAL_NAMES, isProviderName, PROVIDER_KINDS, type ProviderKind };

/**
 * One sender a provider owns: a phone number (E.164 or a short code, as normalized), an email address (with the
 * display name it was written with, if any), or a whole verified domain (`@example.com`).
 */
export type Sender = { kind: "phone"; number: string } | { kind: "email"; address: string; name?: string } | { kind: "domain"; domain: string };

interface CommonSettings {
  name: string;
  /** The channels it may carry: the kind's own when not given (Twilio sms and mms, SendGrid and SMTP email). */
  channels: readonly Channel[];
  maxPerSecond?: number;
  timeoutMs?: number;
  baseUrl?: string;
  /** The senders it owns (`senders`, or the older one-element `from`); absent: it accepts any sender. */
  senders?: readonly Sender[];
}

export type ProviderConfig = CommonSettings &
  (
    | { kind: "mock" }
    | ({ kind: "twilio" } & TwilioSettings)
    | ({ kind: "sendgrid" } & SendGridSettings)
    | ({ kind: "smtp" } & SmtpSettings)
  );

/** What the service runs on: the settings, with the file's providers read by their kinds. */
export type ServiceConfig = Config & { readonly providers: readonly ProviderConfig[] };

const KIND_CHANNELS: Record<ProviderKind, readonly Channel[]> = {
  mock: CHANNELS,
  twilio: TWILIO_CHANNELS,
  sendgrid: SENDGRID_CHANNELS,
  smtp: SMTP_CHANNELS,
};

const text = z.string().trim().min(1, "must be a non-empty string");
const httpUrl = text.refine((s) => /^https?:\/\//.test(s) && URL.canParse(s), "must be an absolute http or https URL");

const common = {
  name: z.string(),
  kind: z.string(),
  channels: z.array(z.enum(CHANNELS as [Channel, ...Channel[]], { error: "must list sms, mms or email" })).min(1).optional(),
  max_per_second: z.number().positive("must be a positive number").optional(),
  timeout_ms: z.number().int().min(10).max(600000).optional(),
  base_url: httpUrl.optional(),
  senders: z.array(text).min(1, "must list at least one sender").optional(),
  from: text.optional(),
};

const KIND_SCHEMAS = {
  mock: z.strictObject(common),
  twilio: z.strictObject({ ...common, ...twilioKeys }),
  sendgrid: z.strictObject({ ...common, ...sendgridKeys }),
  smtp: z.strictObject({ ...common, ...smtpKeys }),
} as const;

/** The first issue of a zod error as `field: message`. */
const firstIssue = (error: z.ZodError) => {
  const issue = error.issues[0]!;
  return issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message;
};

/**
 * One written sender, or why it is not one for a provider carrying `channels`: a phone number for sms/mms, an
 * address, `Name <address>` or `@domain` for email.
 */
export function parseSender(raw: string, channels: readonly Channel[]): Sender | string {
  const email = channels.includes("email");
  const phone = channels.some((c) => c !== "email");
  if (phone && phoneAddressProblem(raw) === null) return { kind: "phone", number: normalizePhone(raw) };
  if (email) {
    const domain = /^@([^@\s]+)$/.exec(raw.trim());
    if (domain) {
      return emailAddressProblem(`x${raw.trim()}`) === null ? { kind: "domain", domain: domain[1]!.toLowerCase() } : `"${raw}" is not a domain (@example.com)`;
    }
    const mailbox = parseMailbox(raw);
    if (mailbox !== null && emailAddressProblem(mailbox.address) === null) {
      const address = mailbox.address.toLowerCase();
      return mailbox.name === undefined ? { kind: "email", address } : { kind: "email", address, name: mailbox.name };
    }
  }
  if (email && phone) return `"${raw}" is neither a phone number nor an email sender (address, Name <address> or @domain)`;
  return email ? `"${raw}" is not an email sender (an address, Name <address> or @domain)` : `"${raw}" is not a phone number (E.164 or a short code)`;
}

/** One entry of `providers`, or the reason it is unusable (naming the provider when it has a name). */
function parseProvider(raw: unknown, index: number): ProviderConfig | string {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return `providers[${index}] must be an object`;
  const entry = raw as Record<string, unknown>;
  if (typeof entry.name !== "string" || !PROVIDER_NAME.test(entry.name)) {
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
  if (p.from !== undefined && p.senders !== undefined) return `${label} (${kind}): from and senders are both set; keep senders`;
  const written = p.senders ?? (p.from !== undefined ? [p.from] : undefined);
  if (kind === "twilio") {
    const problem = twilioProblem({ ...(written ? { senders: written } : {}), ...(typeof p.messaging_service_sid === "string" ? { messaging_service_sid: p.messaging_service_sid } : {}) });
    if (problem !== undefined) return `${label} (${kind}): ${problem}`;
  }
  const channels = p.channels ?? KIND_CHANNELS[kind];
  const unfit = channels.find((c) => !KIND_CHANNELS[kind].includes(c));
  if (unfit !== undefined) return `${label} (${kind}): cannot carry ${unfit}`;
  const senders: Sender[] = [];
  for (const writtenSender of written ?? []) {
    const sender = parseSender(writtenSender, channels);
    if (typeof sender === "string") return `${label} (${kind}): senders: ${sender}`;
    senders.push(sender);
  }
  const base: CommonSettings = { name: p.name, channels };
  if (p.max_per_second !== undefined) base.maxPerSecond = p.max_per_second;
  if (p.timeout_ms !== undefined) base.timeoutMs = p.timeout_ms;
  if (p.base_url !== undefined) base.baseUrl = p.base_url;
  if (written !== undefined) base.senders = senders;
  switch (kind) {
    case "mock":
      return { ...base, kind };
    case "twilio":
      return { ...base, kind, ...readTwilio(p) };
    case "sendgrid":
      return { ...base, kind, ...readSendGrid(p) };
    case "smtp":
      return { ...base, kind, ...readSmtp(p) };
  }
}

/** Reads the file's `providers` (absent: none), or the one-line reason they are unusable. */
export function parseProviders(rawProviders: unknown): ProviderConfig[] | string {
  const providers: ProviderConfig[] = [];
  if (rawProviders === undefined) return providers;
  if (!Array.isArray(rawProviders)) return "providers must be a list of providers";
  for (const [index, raw] of rawProviders.entries()) {
    const parsed = parseProvider(raw, index);
    if (typeof parsed === "string") return parsed;
    if (providers.some((p) => p.name === parsed.name)) return `provider ${parsed.name} is defined twice`;
    providers.push(parsed);
  }
  return providers;
}

/**
 * The configuration with its providers read: throws ConfigError naming the first bad entry, or a route naming a
 * provider that is not configured or cannot carry its channel.
 */
export function withProviders(config: Config): ServiceConfig {
  const providers = parseProviders(config.providerSource.entries);
  if (typeof providers === "string") throw new ConfigError(`${config.providerSource.where}: ${providers}`);
  const routes = routesProblem(providers, config.deliveryRoutes);
  if (routes !== undefined) throw new ConfigError(`${config.providerSource.routesWhere}: ${routes}`);
  return { ...config, providers };
}

/** Loads the settings (flags > environment > file > defaults) and reads their providers: what a command runs on. */
export const loadServiceConfig = (sources: ConfigSources = {}): ServiceConfig => withProviders(loadConfig(sources));

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
      return twilioSecrets(provider);
    case "sendgrid":
      return sendgridSecrets();
    case "smtp":
      return smtpSecrets(provider);
  }
}

/**
 * Whether the configured providers can reach their APIs, as one line naming the first that cannot: one the egress
 * guard would refuse. The allowlist is not widened on the operator's behalf: which hosts the service may call stays
 * a decision written in SSRF_ALLOWLIST, and this says exactly what to add. (Whether their credentials are stored is
 * known only once the database is open: readiness.ts.)
 */
export function providersProblem(config: { providers: readonly ProviderConfig[]; ssrfAllowlist: readonly string[]; egressAllowHttp: boolean }): string | undefined {
  for (const provider of config.providers) {
    const api = apiBaseUrl(provider);
    const egress = api === undefined ? undefined : egressUrlProblem({ ...providerEgress(config, provider), allowlist: config.ssrfAllowlist }, api);
    if (egress !== undefined) return `provider ${provider.name} (${provider.kind}): ${api} is refused by the egress guard (${egress})`;
  }
  return undefined;
}

/**
 * Refuses providers whose API the egress guard would refuse, with one line. Kept out of loading so that commands
 * that send nothing (`migrate`, `keys`, `creds`) run while a provider is still being set up; `serve` and `check`
 * call it. Missing credentials are found once the database is open (readiness.ts).
 */
export function assertProvidersReady(config: ServiceConfig): void {
  const problem = providersProblem(config);
  if (problem !== undefined) throw new ConfigError(problem);
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

/**
 * What the providers' own webhooks need from the configuration and lack, one sentence each (each kind says its own:
 * Twilio's status callbacks need the public URL, SendGrid's signed events their verification key).
 */
export function providerWebhookGaps(providers: readonly ProviderConfig[], publicUrl: string | undefined): string[] {
  const gaps: (string | undefined)[] = [twilioWebhookGap(providers.filter((p) => p.kind === "twilio").map((p) => p.name), publicUrl)];
  for (const p of providers) if (p.kind === "sendgrid") gaps.push(sendgridWebhookGap(p.name, p));
  return gaps.filter((g): g is string => g !== undefined);
}
