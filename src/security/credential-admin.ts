import type { SqlRunner } from "../db/runner.ts";
import { CREDENTIALS_CHANNEL } from "./credentials.ts";
import { encryptCredential, type MasterKey, reencrypt } from "./keyring.ts";

/**
 * What `messaging creds` does to `provider_credentials`. Every change is one transaction under one advisory lock
 * (two operators, or two machines, cannot interleave version numbers or a master-key rotation), bumps `updated_at`
 * so polling instances notice, and NOTIFYs them at commit. Values go in and never come back out: listing shows
 * versions, key ids and dates only.
 */

/** One stored version, as `creds list` shows it. */
export interface CredentialVersion {
  version: number;
  keyId: string;
  createdAt: Date;
  /** Null for the current version; for an earlier one, when it stops verifying inbound signatures. */
  verifyUntil: Date | null;
}

export interface CredentialListing {
  provider: string;
  name: string;
  /** Highest (current) first. */
  versions: CredentialVersion[];
}

/** Longest rotation overlap `creds rotate --overlap` takes. */
const MAX_OVERLAP_MS = 365 * 86_400_000;
const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Reads an overlap such as `24h`, `30m`, `90s`, `7d` or `0` (none) as milliseconds; null when it is none of these. */
export function parseOverlap(text: string): number | null {
  const match = /^(\d{1,6})([smhd])?$/.exec(text.trim());
  if (!match || (match[2] === undefined && match[1] !== "0")) return null;
  const ms = Number(match[1]) * UNITS[match[2] ?? "s"]!;
  return ms <= MAX_OVERLAP_MS ? ms : null;
}

/** Serializes every write of the store; a transaction-level lock, released at commit or rollback. */
const LOCK = "SELECT pg_advisory_xact_lock(hashtext('messaging.provider_credentials'))";
const NOTIFY = `SELECT pg_notify('${CREDENTIALS_CHANNEL}', '')`;

/**
 * Stores `value` as the new current version of `provider/name`. With `overlapMs` (a rotation) the version it
 * replaces keeps verifying until the overlap ends, and earlier versions keep the end they had; without it (a plain
 * set) every earlier version is deleted, so nothing but the new value verifies. Versions whose overlap has ended
 * are deleted either way: they are of no use and need not sit in the table, even encrypted.
 */
export async function storeCredential(
  sql: SqlRunner,
  keys: readonly MasterKey[],
  target: { provider: string; name: string; value: string; overlapMs?: number },
): Promise<{ version: number; previousVerifiesUntil?: Date }> {
  const { provider, name, value, overlapMs } = target;
  return sql.transaction(async (tx) => {
    await tx.query(LOCK);
    const [latest] = await tx.query<{ v: number }>(
      "SELECT coalesce(max(version), 0)::int AS v FROM provider_credentials WHERE provider = $1 AND name = $2",
      [provider, name],
    );
    const version = latest!.v + 1;
    const envelope = encryptCredential(keys, { provider, name, version }, value);
    let previousVerifiesUntil: Date | undefined;
    if (overlapMs === undefined) {
      await tx.query("DELETE FROM provider_credentials WHERE provider = $1 AND name = $2", [provider, name]);
    } else {
      const [previous] = await tx.query<{ verify_until: Date | string }>(
        `UPDATE provider_credentials SET verify_until = now() + $4 * interval '1 millisecond', updated_at = now()
          WHERE provider = $1 AND name = $2 AND version = $3 RETURNING verify_until`,
        [provider, name, latest!.v, overlapMs],
      );
      if (previous) previousVerifiesUntil = new Date(previous.verify_until);
      await tx.query("DELETE FROM provider_credentials WHERE provider = $1 AND name = $2 AND verify_until <= now()", [provider, name]);
    }
    await tx.query(
      "INSERT INTO provider_credentials (provider, name, version, key_id, envelope) VALUES ($1, $2, $3, $4, $5)",
      [provider, name, version, keys[0]!.id, envelope],
    );
    await tx.query(NOTIFY);
    return previousVerifiesUntil ? { version, previousVerifiesUntil } : { version };
  });
}

/**
 * Re-encrypts every stored version under the first master key, in one transaction: either all of them move or,
 * when any does not decrypt, none does (the `CredentialError` names it). Afterwards the other keys decrypt
 * nothing and can be removed. Values already under the first key are left as they are.
 */
export async function reencryptAll(sql: SqlRunner, keys: readonly MasterKey[]): Promise<{ total: number; moved: number }> {
  return sql.transaction(async (tx) => {
    await tx.query(LOCK);
    const rows = await tx.query<{ provider: string; name: string; version: number; envelope: string }>(
      "SELECT provider, name, version, envelope FROM provider_credentials ORDER BY provider, name, version FOR UPDATE",
    );
    let moved = 0;
    for (const row of rows) {
      const envelope = reencrypt(keys, { provider: row.provider, name: row.name, version: row.version }, row.envelope);
      if (envelope === row.envelope) continue;
      await tx.query(
        "UPDATE provider_credentials SET envelope = $4, key_id = $5, updated_at = now() WHERE provider = $1 AND name = $2 AND version = $3",
        [row.provider, row.name, row.version, envelope, keys[0]!.id],
      );
      moved += 1;
    }
    if (moved > 0) await tx.query(NOTIFY);
    return { total: rows.length, moved };
  });
}

/** Every stored credential with its versions, never a value. Versions whose overlap has ended are left out. */
export async function listCredentials(sql: SqlRunner): Promise<CredentialListing[]> {
  const rows = await sql.query<{ provider: string; name: string; version: number; key_id: string; created_at: Date | string; verify_until: Date | string | null }>(
    `SELECT provider, name, version, key_id, created_at, verify_until FROM provider_credentials
      WHERE verify_until IS NULL OR verify_until > now() OR version = (
        SELECT max(version) FROM provider_credentials latest WHERE latest.provider = provider_credentials.provider AND latest.name = provider_credentials.name)
      ORDER BY provider, name, version DESC`,
  );
  const out: CredentialListing[] = [];
  for (const row of rows) {
    let entry = out.at(-1);
    if (entry?.provider !== row.provider || entry.name !== row.name) out.push((entry = { provider: row.provider, name: row.name, versions: [] }));
    const current = entry.versions.length === 0;
    entry.versions.push({
      version: row.version,
      keyId: row.key_id,
      createdAt: new Date(row.created_at),
      verifyUntil: current || row.verify_until === null ? null : new Date(row.verify_until),
    });
  }
  return out;
}
