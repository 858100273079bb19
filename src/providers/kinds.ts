/**
 * The names the configuration and the credential store share: provider kinds, the credentials each kind may have,
 * and what a provider name may look like. Nearly a leaf (only the name rule from domain/), so the CLI can describe `messaging creds`
 * without loading the provider adapters behind src/providers/config.ts.
 */

import { PROVIDER_NAME } from "../domain/provider-routes.ts";

export const PROVIDER_KINDS = ["mock", "twilio", "sendgrid", "smtp"] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

/** A provider's name: lower-case letters, digits, `-` and `_`, starting with a letter or digit. */
export { PROVIDER_NAME };
export const isProviderName = (text: string): boolean => PROVIDER_NAME.test(text);

/**
 * Every credential name a provider of this kind may have stored, whether or not its settings need it: Twilio's
 * auth token also verifies its webhooks when an API key sends, and SendGrid's Inbound Parse password protects
 * its inbound route.
 */
export const CREDENTIAL_NAMES: Record<ProviderKind, readonly string[]> = {
  mock: [],
  twilio: ["auth_token", "api_key_secret"],
  sendgrid: ["api_key", "parse_password"],
  smtp: ["password"],
};
