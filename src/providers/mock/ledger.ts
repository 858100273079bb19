/**
 * The mock provider's record of what it accepted, by idempotency key: what makes it behave like a provider that
 * honours keys (a repeat is answered with the first acceptance, not sent again), and what tests of the binary
 * read (`mock_provider_sends`) to prove each message was accepted exactly once. The ledger kept in the database is
 * the provider-mock module's (src/modules/provider-mock/ledger.ts): providers run no SQL.
 */

export interface MockSend {
  idempotencyKey: string;
  provider: string;
  /** The id to record if this is the key's first acceptance; ignored for a repeat. */
  providerMessageId: string;
}

export interface MockAcceptance {
  idempotencyKey: string;
  /** The id of the key's first acceptance. */
  providerMessageId: string;
  /** How many accepted calls the key has had, this one included. */
  calls: number;
  /** True for the key's first acceptance, false for a repeat. */
  first: boolean;
}

export interface MockLedger {
  /** Answers one acceptance per entry, in order. An entry whose key appears earlier in the list is a repeat. */
  accept(entries: MockSend[]): Promise<MockAcceptance[]>;
}

/** In memory, for unit tests: the same answers as the SQL ledger, lost with the process. */
export function memoryMockLedger(): MockLedger {
  const sends = new Map<string, { providerMessageId: string; calls: number }>();
  return {
    accept: async (entries) =>
      entries.map(({ idempotencyKey, providerMessageId }) => {
        const seen = sends.get(idempotencyKey);
        if (seen) {
          seen.calls += 1;
          return { idempotencyKey, providerMessageId: seen.providerMessageId, calls: seen.calls, first: false };
        }
        sends.set(idempotencyKey, { providerMessageId, calls: 1 });
        return { idempotencyKey, providerMessageId, calls: 1, first: true };
      }),
  };
}
