/**
 * The adapters of the configured providers, built from their config entries (config.ts). Credentials are looked
 * up at every call (the adapters take them as functions), so a rotation reaches a running instance as soon as its
 * store reloads; start-up has already refused a provider whose credential is missing (readiness.ts), so a missing
 * one here was deleted since. One that no longer decrypts throws the store's CredentialError, naming it.
 */
import type { Config } from "../config/index.ts";
import type { CredentialLookup } from "../security/credential-lookup.ts";
import { egressFromConfig } from "../security/egress.ts";
import { attachmentFetcher } from "./attachments.ts";
import { type ProviderConfig, providerEgress } from "./config.ts";
import type { Provider } from "./provider.ts";
import { senderName } from "./senders.ts";
import { SendGridProvider } from "./sendgrid/adapter.ts";
import { SmtpProvider, smtpHostCheck } from "./smtp/adapter.ts";
import { TwilioProvider } from "./twilio/adapter.ts";

type BuildSettings = Pick<Config, "ssrfAllowlist" | "egressAllowHttp" | "publicUrl" | "emailAttachmentMaxBytes" | "attachmentPorts">;

export function buildProvider(
  config: BuildSettings,
  provider: Exclude<ProviderConfig, { kind: "mock" }>,
  timeoutMs: number,
  credentials: CredentialLookup,
): Provider {
  const secret = (name: string) => () => {
    const value = credentials.current(provider.name, name);
    if (value === undefined) throw new Error(`provider ${provider.name}: credential ${name} is not stored`);
    return value;
  };
  // The guard's own deadline bounds a request the dispatcher's timeout abandoned (see twilio/adapter.ts on aborts).
  const egress = () => egressFromConfig(config, { ...providerEgress(config, provider), timeoutMs });
  // Attachments come from anywhere SSRF_ALLOWLIST allows, on the usual ports (and MESSAGING_ATTACHMENT_PORTS),
  // within the message's size cap.
  const ports = [...(config.egressAllowHttp ? [443, 80] : [443]), ...config.attachmentPorts];
  const attachments = attachmentFetcher((maxResponseBytes) => egressFromConfig(config, { timeoutMs, maxResponseBytes, ports }), config.emailAttachmentMaxBytes);
  const nameOf = (address: string) => senderName(provider.senders, address);
  switch (provider.kind) {
    case "twilio": {
      const token = provider.apiKeySid === undefined ? secret("auth_token") : secret("api_key_secret");
      const username = provider.apiKeySid ?? provider.accountSid;
      return new TwilioProvider(provider.name, {
        accountSid: provider.accountSid,
        credentials: () => ({ username, password: token() }),
        egress: egress(),
        ...definedOnly({
          messagingServiceSid: provider.messagingServiceSid,
          baseUrl: provider.baseUrl,
          statusCallbackUrl: config.publicUrl && `${config.publicUrl.replace(/\/+$/, "")}/api/webhooks/twilio/${provider.name}/status`,
        }),
      });
    }
    case "sendgrid":
      return new SendGridProvider(provider.name, { apiKey: secret("api_key"), egress: egress(), senderName: nameOf, attachments, ...definedOnly({ baseUrl: provider.baseUrl }) });
    case "smtp":
      return new SmtpProvider(provider.name, {
        host: provider.host,
        port: provider.port,
        secure: provider.secure,
        senderName: nameOf,
        attachments,
        // A relay on a private address must be listed in SSRF_ALLOWLIST by its address, as for HTTP providers.
        checkHost: smtpHostCheck({ allowAddresses: config.ssrfAllowlist }),
        ...definedOnly({ requireTls: provider.requireTls, user: provider.user, password: provider.user === undefined ? undefined : secret("password") }),
      });
  }
}

/** Drops undefined values: the adapters' options are exact optional properties. */
const definedOnly = <T extends Record<string, unknown>>(values: T): Partial<{ [K in keyof T]: Exclude<T[K], undefined> }> =>
  Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<{ [K in keyof T]: Exclude<T[K], undefined> }>;
