import { type ProviderConfig, requiredSecrets } from "./config.ts";
import type { CredentialStore } from "../security/credentials.ts";
import { CredentialError } from "../security/keyring.ts";

/**
 * Whether every configured provider has the credentials it cannot send without, stored and readable, as one line
 * naming the first provider and credential that does not, and what to run. `serve` refuses to start on it and
 * `check` reports it; it needs the store loaded, so it runs once the database is open.
 */
export function credentialsProblem(
  providers: readonly ProviderConfig[],
  store: Pick<CredentialStore, "has" | "current">,
  hasMasterKey: boolean,
): string | undefined {
  for (const provider of providers) {
    for (const name of requiredSecrets(provider)) {
      const label = `provider ${provider.name} (${provider.kind})`;
      if (!hasMasterKey) {
        return `${label} needs credential ${name}, but no master key is configured to store or read it (set MESSAGING_MASTER_KEYS or MESSAGING_MASTER_KEYS_FILE)`;
      }
      if (!store.has(provider.name, name)) {
        return `${label}: credential ${name} is not stored (run \`messaging creds set ${provider.name} ${name} --value-file FILE\`)`;
      }
      try {
        store.current(provider.name, name);
      } catch (err) {
        if (err instanceof CredentialError) return `${label}: ${err.message}`;
        throw err;
      }
    }
  }
  return undefined;
}
