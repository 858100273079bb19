/**
 * What the running service reads of provider credentials, whatever holds them (the encrypted credential store, or
 * a fixed map in a test). Adapters ask `current` at every call, and webhook routes ask `verifying` at every request,
 * so a credential changed by `messaging creds` is used as soon as the holder has reloaded it, without a restart.
 */
export interface CredentialLookup {
  /** The value to send with now; undefined when none is stored. */
  current(provider: string, name: string): string | undefined;
  /**
   * Every value that verifies an inbound signature now: the current one first, then earlier versions whose rotation
   * overlap has not ended yet. Empty when none is stored.
   */
  verifying(provider: string, name: string): readonly string[];
}

/** A lookup over a fixed set of values, `provider/name` → value (tests, and providers with no rotation history). */
export function fixedCredentials(values: Readonly<Record<string, string>>): CredentialLookup {
  const current = (provider: string, name: string) => values[`${provider}/${name}`];
  return {
    current,
    verifying: (provider, name) => {
      const value = current(provider, name);
      return value === undefined ? [] : [value];
    },
  };
}
