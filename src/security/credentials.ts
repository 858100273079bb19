import type { SqlRunner } from "../db/runner.ts";
import type { CredentialLookup } from "./credential-lookup.ts";
import { CredentialError, decryptCredential, type MasterKey } from "./keyring.ts";

/**
 * The credential store as the running service reads it: every row of `provider_credentials`, decrypted once into
 * memory, so a provider call or a webhook costs no query and no decryption. It polls a fingerprint of the table
 * (row count and latest `updated_at`, one index-free aggregate over a handful of rows) every couple of seconds and
 * reloads when it moved, so a `messaging creds` run on any machine reaches every instance within seconds without a
 * restart; a NOTIFY from `creds` makes PostgreSQL instances reload at once.
 *
 * A version that does not decrypt (a missing or wrong master key, an altered row) is kept as its error: asking for
 * it throws a `CredentialError` naming it, rather than answering nothing as if no credential were stored.
 */

/** What the poller tells its owner (logs, metrics); the errors name credentials, never values. */
export type ReloadReport = { versions: number; unreadable: readonly CredentialError[] };

export interface CredentialStoreOptions {
  /** How often the table's fingerprint is read (default 2 s). */
  pollMs?: number;
  /** The clock overlaps are judged by (tests). */
  now?: () => number;
  /** After every load that found the table changed. */
  onReload?: (report: ReloadReport) => void;
  /** A poll that failed (the database is away); the values loaded before are kept. */
  onPollError?: (error: unknown) => void;
}

/** The channel `creds` NOTIFYs after a change. */
export const CREDENTIALS_CHANNEL = "messaging_credentials";

interface Version {
  version: number;
  envelope: string;
  /** Epoch ms; null for the current version (it verifies as long as it is current). */
  verifyUntil: number | null;
  value?: string;
  error?: CredentialError;
}

interface Row {
  provider: string;
  name: string;
  version: number;
  envelope: string;
  verify_until: Date | string | null;
  n: number;
  changed: string;
}

const POLL_MS = 2000;
const FINGERPRINT = "SELECT count(*)::int AS n, max(updated_at)::text AS changed FROM provider_credentials";
/** The rows and, from the same snapshot, the fingerprint they make (so a change made meanwhile is never missed). */
const ROWS =
  "SELECT provider, name, version, envelope, verify_until, count(*) OVER ()::int AS n, (max(updated_at) OVER ())::text AS changed FROM provider_credentials";

const slot = (provider: string, name: string) => `${provider}\u0000${name}`;
/** A decrypted version is reused only for the same reference and the same envelope text. */
const decrypted = (where: string, version: number, envelope: string) => `${where}\u0000${version}\u0000${envelope}`;

export class CredentialStore implements CredentialLookup {
  /** `provider\0name` → versions, highest (current) first. */
  #byName = new Map<string, Version[]>();
  #fingerprint: string | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #polling: Promise<void> | undefined;
  readonly #now: () => number;

  constructor(
    private readonly sql: SqlRunner,
    private readonly keys: readonly MasterKey[],
    private readonly options: CredentialStoreOptions = {},
  ) {
    this.#now = options.now ?? Date.now;
  }

  current(provider: string, name: string): string | undefined {
    const current = this.#byName.get(slot(provider, name))?.[0];
    if (current?.error) throw current.error;
    return current?.value;
  }

  verifying(provider: string, name: string): readonly string[] {
    const versions = this.#byName.get(slot(provider, name));
    if (!versions) return [];
    if (versions[0]!.error) throw versions[0]!.error;
    const now = this.#now();
    // An earlier version that does not decrypt was reported at load; it cannot verify anything either way.
    const earlier = versions.slice(1).filter((v) => v.verifyUntil !== null && v.verifyUntil > now && v.value !== undefined);
    return [versions[0]!.value!, ...earlier.map((v) => v.value!)];
  }

  /** Whether any version of `provider/name` is stored (readable or not). */
  has(provider: string, name: string): boolean {
    return this.#byName.has(slot(provider, name));
  }

  /** The stored versions that do not decrypt with the configured master keys, as loaded last. */
  unreadable(): CredentialError[] {
    return [...this.#byName.values()].flatMap((versions) => versions.flatMap((v) => (v.error ? [v.error] : [])));
  }

  /** Reads the table if its fingerprint moved since the last load (always, the first time). True when it reloaded. */
  async refresh(): Promise<boolean> {
    const [mark] = await this.sql.query<{ n: number; changed: string | null }>(FINGERPRINT);
    if (this.#fingerprint !== undefined && fingerprint(mark!.n, mark!.changed) === this.#fingerprint) return false;
    await this.load();
    return true;
  }

  /** Reads and decrypts every row; values whose envelope did not change are kept without decrypting them again. */
  async load(): Promise<void> {
    const rows = await this.sql.query<Row>(ROWS);
    // The same envelope text in another row must not pass unchecked: it is decrypted (and fails) there.
    const known = new Map<string, Version>();
    for (const [where, versions] of this.#byName) for (const v of versions) known.set(decrypted(where, v.version, v.envelope), v);
    const byName = new Map<string, Version[]>();
    for (const row of rows) {
      const where = slot(row.provider, row.name);
      const verifyUntil = row.verify_until === null ? null : new Date(row.verify_until).getTime();
      const version = { ...this.#open(row, known.get(decrypted(where, row.version, row.envelope))), verifyUntil };
      byName.set(where, [...(byName.get(where) ?? []), version]);
    }
    for (const list of byName.values()) list.sort((a, b) => b.version - a.version);
    this.#byName = byName;
    this.#fingerprint = fingerprint(rows[0]?.n ?? 0, rows[0]?.changed ?? null);
    this.options.onReload?.({ versions: rows.length, unreadable: this.unreadable() });
  }

  /** Polls every `pollMs` until `stop` (the timer does not keep the process alive). */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.poll(), this.options.pollMs ?? POLL_MS);
    this.#timer.unref();
  }

  /** A refresh now, unless one is running (a NOTIFY and the timer may ask at once). */
  poll(): Promise<void> {
    this.#polling ??= this.refresh()
      .then(
        () => {},
        (err: unknown) => this.options.onPollError?.(err),
      )
      .finally(() => (this.#polling = undefined));
    return this.#polling;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #open(row: Row, known: Version | undefined): Omit<Version, "verifyUntil"> {
    const ref = { provider: row.provider, name: row.name, version: row.version };
    if (known) return { version: row.version, envelope: row.envelope, ...valueOrError(known) };
    try {
      return { version: row.version, envelope: row.envelope, value: decryptCredential(this.keys, ref, row.envelope) };
    } catch (err) {
      if (!(err instanceof CredentialError)) throw err;
      const error = this.keys.length === 0 ? new CredentialError(ref, "no_master_key", "no master key is configured to decrypt it") : err;
      return { version: row.version, envelope: row.envelope, error };
    }
  }
}

const fingerprint = (rows: number, changed: string | null) => `${rows}/${changed ?? ""}`;

const valueOrError = (v: Version): { value: string } | { error: CredentialError } => (v.error ? { error: v.error } : { value: v.value! });
