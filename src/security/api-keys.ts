/**
 * API keys (SPEC §8): their format, their storage and their verification.
 *
 * A key reads `msg_<prefix>_<secret>`: the fixed `msg_` start and shape let secret scanners recognise a leaked
 * key; `prefix` (10 base32 characters, public) names the key in lists and is how a presented key is looked up;
 * `secret` is 256 random bits (43 base64url characters). Only SHA-256 of the secret is stored. A fast hash is
 * right here, unlike for passwords: slow hashes exist to make guessing a low-entropy secret expensive, and a
 * 256-bit random secret cannot be guessed however fast each guess is. The stored and the presented hash are
 * compared with `timingSafeEqual`.
 *
 * Verification is cached per prefix for a few seconds (`cacheMs`), so a request costs no database read and a
 * revocation takes effect on every instance within that time. `last_used_at` is written at most once a minute
 * per key and process, after the answer, never as a write per request.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { SqlRunner } from "../db/runner.ts";

/**
 * `inbound` lets a provider bridge post to the generic webhooks (/api/webhooks/sms|email) without a webhook
 * signature; a key made for it alone can do nothing else.
 */
export const SCOPES = ["send", "read", "admin", "inbound"] as const;
export type Scope = (typeof SCOPES)[number];

/** A key as listed: everything but the secret, which is never stored. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  prefix: string;
  scopes: Scope[];
  createdAt: Date;
  lastUsedAt: Date | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  /** Requests per minute allowed to this key; null: the deployment's `MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN`. */
  rateLimitPerMin: number | null;
}

/** Who is calling, once a key verified. */
export interface KeyPrincipal {
  id: string;
  scopes: ReadonlySet<Scope>;
  /** The key's own rate limit (requests per minute), or null for the deployment's default. */
  rateLimitPerMin: number | null;
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
const KEY_PATTERN = /^msg_([a-z2-7]{10})_([A-Za-z0-9_-]{43})$/;

/** A new key: its prefix (public), its secret, and the whole key as the user sees it once. */
export function generateApiKey(): { prefix: string; secret: string; key: string } {
  const prefix = [...randomBytes(10)].map((b) => BASE32[b & 31]).join("");
  const secret = randomBytes(32).toString("base64url");
  return { prefix, secret, key: `msg_${prefix}_${secret}` };
}

/** Splits a presented key; null for anything that is not exactly the format (checked before any lookup). */
export function parseApiKey(text: string): { prefix: string; secret: string } | null {
  const match = KEY_PATTERN.exec(text);
  return match ? { prefix: match[1]!, secret: match[2]! } : null;
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** Reads `90d`, `12h`, `30m` (or a bare number of days) as milliseconds; null when it is none of these. */
export function parseDuration(text: string): number | null {
  const match = /^(\d{1,6})([dhm]?)$/.exec(text.trim());
  if (!match) return null;
  const n = Number(match[1]);
  const unit = match[2] === "h" ? 3_600_000 : match[2] === "m" ? 60_000 : 86_400_000;
  return n > 0 ? n * unit : null;
}

interface KeyRow {
  id: string;
  name: string;
  prefix: string;
  secret_hash: string;
  scopes: Scope[] | string;
  created_at: Date | string;
  last_used_at: Date | string | null;
  expires_at: Date | string | null;
  revoked_at: Date | string | null;
  rate_limit_per_min: number | null;
}

const date = (v: Date | string | null): Date | null => (v === null ? null : new Date(v));
const COLUMNS = "id::text AS id, name, prefix, secret_hash, scopes, created_at, last_used_at, expires_at, revoked_at, rate_limit_per_min";

function record(row: KeyRow): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: typeof row.scopes === "string" ? (JSON.parse(row.scopes) as Scope[]) : row.scopes,
    createdAt: new Date(row.created_at),
    lastUsedAt: date(row.last_used_at),
    expiresAt: date(row.expires_at),
    revokedAt: date(row.revoked_at),
    rateLimitPerMin: row.rate_limit_per_min === null ? null : Number(row.rate_limit_per_min),
  };
}

/** Creates a key; the returned `key` is the only time the secret exists outside the caller's hands. */
export async function createApiKey(
  sql: SqlRunner,
  options: { name: string; scopes: readonly Scope[]; expiresAt?: Date | null; rateLimitPerMin?: number | null },
): Promise<ApiKeyRecord & { key: string }> {
  const { prefix, secret, key } = generateApiKey();
  const [row] = await sql.query<KeyRow>(
    `INSERT INTO api_keys (id, name, prefix, secret_hash, scopes, expires_at, rate_limit_per_min)
     VALUES ($1::uuid, $2, $3, $4, $5::jsonb, $6::timestamptz, $7::int) RETURNING ${COLUMNS}`,
    [
      Bun.randomUUIDv7(),
      options.name,
      prefix,
      hashSecret(secret),
      JSON.stringify([...new Set(options.scopes)]),
      options.expiresAt?.toISOString() ?? null,
      options.rateLimitPerMin ?? null,
    ],
  );
  return { ...record(row!), key };
}

/**
 * Creates the first key when none was ever made (revoked ones count: an operator who revoked every key meant
 * it), under an advisory lock so that instances starting together on an empty database make one between them.
 * Returns the new key, or null when a key already existed.
 */
export async function createFirstApiKey(sql: SqlRunner): Promise<(ApiKeyRecord & { key: string }) | null> {
  return sql.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtextextended('messaging:first-api-key', 0))");
    const [row] = await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM api_keys");
    if (row!.n > 0) return null;
    return createApiKey(tx, { name: "initial", scopes: SCOPES });
  });
}

export async function listApiKeys(sql: SqlRunner): Promise<ApiKeyRecord[]> {
  return (await sql.query<KeyRow>(`SELECT ${COLUMNS} FROM api_keys ORDER BY created_at, id`)).map(record);
}

const isUuid = (text: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(text);

/** Revokes a key named by its id or its prefix; the record, or null when no such key exists. */
export async function revokeApiKey(sql: SqlRunner, idOrPrefix: string): Promise<ApiKeyRecord | null> {
  const [row] = await sql.query<KeyRow>(
    `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
      WHERE ${isUuid(idOrPrefix) ? "id = $1::uuid" : "prefix = $1"} RETURNING ${COLUMNS}`,
    [idOrPrefix],
  );
  return row ? record(row) : null;
}

/**
 * Changes a key's own rate limit (requests per minute; null returns it to the deployment's default). Running
 * instances apply it within the verifier's cache time. The record, or null when no such key exists.
 */
export async function updateApiKeyRateLimit(sql: SqlRunner, idOrPrefix: string, rateLimitPerMin: number | null): Promise<ApiKeyRecord | null> {
  const [row] = await sql.query<KeyRow>(
    `UPDATE api_keys SET rate_limit_per_min = $2::int
      WHERE ${isUuid(idOrPrefix) ? "id = $1::uuid" : "prefix = $1"} RETURNING ${COLUMNS}`,
    [idOrPrefix, rateLimitPerMin],
  );
  return row ? record(row) : null;
}

/**
 * Reads a rate such as `600/min`, `10/s`, `36000/h` or a bare `600` (per minute) as requests per minute; null when
 * it is none of these or comes to less than one a minute. `default` is not a rate: the caller handles it.
 */
export function parseRateLimit(text: string): number | null {
  const match = /^(\d{1,9})\s*(?:\/\s*(s|sec|second|m|min|minute|h|hour))?$/i.exec(text.trim());
  if (!match) return null;
  const n = Number(match[1]);
  const unit = (match[2] ?? "min").toLowerCase();
  const perMin = unit.startsWith("s") ? n * 60 : unit.startsWith("h") ? n / 60 : n;
  return Number.isInteger(perMin) && perMin >= 1 && perMin <= 10_000_000 ? perMin : null;
}

interface Cached {
  /** Undefined: no key has this prefix. */
  key?: { id: string; hash: Buffer; scopes: ReadonlySet<Scope>; expiresAt: number | null; revoked: boolean; rateLimitPerMin: number | null };
  until: number;
}

export interface VerifierOptions {
  /** How long a looked-up key (or its absence) is trusted; a revocation takes effect within it. */
  cacheMs?: number;
  /** Least time between two writes of one key's `last_used_at` by this process. */
  touchEveryMs?: number;
  /** Most prefixes cached; beyond it the oldest are dropped (bounds memory under a flood of random keys). */
  maxCached?: number;
  now?: () => number;
  onTouchError?: (err: unknown) => void;
}

/** Verifies presented keys against the store, with the per-prefix cache and throttled `last_used_at`. */
export class ApiKeyVerifier {
  private readonly cache = new Map<string, Cached>();
  private readonly lookups = new Map<string, Promise<Cached>>();
  private readonly touched = new Map<string, number>();
  private readonly cacheMs: number;
  private readonly touchEveryMs: number;
  private readonly maxCached: number;
  private readonly now: () => number;

  constructor(
    private readonly sql: SqlRunner,
    private readonly options: VerifierOptions = {},
  ) {
    this.cacheMs = options.cacheMs ?? 5000;
    this.touchEveryMs = options.touchEveryMs ?? 60_000;
    this.maxCached = options.maxCached ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** The key's principal, or null for a key that is malformed, unknown, wrong, expired or revoked (never which). */
  async verify(presented: string): Promise<KeyPrincipal | null> {
    const parsed = parseApiKey(presented);
    if (!parsed) return null;
    const entry = await this.lookup(parsed.prefix);
    const presentedHash = Buffer.from(hashSecret(parsed.secret), "hex");
    // Compare even when the prefix is unknown, so the answer takes as long either way.
    const stored = entry.key?.hash ?? Buffer.alloc(32);
    const equal = timingSafeEqual(presentedHash, stored);
    const key = entry.key;
    if (!equal || !key || key.revoked || (key.expiresAt !== null && key.expiresAt <= this.now())) return null;
    this.touch(key.id);
    return { id: key.id, scopes: key.scopes, rateLimitPerMin: key.rateLimitPerMin };
  }

  private async lookup(prefix: string): Promise<Cached> {
    const now = this.now();
    const cached = this.cache.get(prefix);
    if (cached && cached.until > now) return cached;
    // Concurrent requests with one key share the read.
    let pending = this.lookups.get(prefix);
    if (!pending) {
      pending = this.read(prefix).finally(() => this.lookups.delete(prefix));
      this.lookups.set(prefix, pending);
    }
    return pending;
  }

  private async read(prefix: string): Promise<Cached> {
    const [row] = await this.sql.query<KeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE prefix = $1`, [prefix]);
    const until = this.now() + this.cacheMs;
    const entry: Cached = row
      ? {
          until,
          key: {
            id: row.id,
            hash: Buffer.from(row.secret_hash, "hex"),
            scopes: new Set(record(row).scopes),
            expiresAt: row.expires_at === null ? null : new Date(row.expires_at).getTime(),
            revoked: row.revoked_at !== null,
            rateLimitPerMin: row.rate_limit_per_min === null ? null : Number(row.rate_limit_per_min),
          },
        }
      : { until };
    if (this.cache.size >= this.maxCached) this.cache.delete(this.cache.keys().next().value!);
    this.cache.delete(prefix);
    this.cache.set(prefix, entry);
    return entry;
  }

  private touch(id: string): void {
    const now = this.now();
    const last = this.touched.get(id);
    if (last !== undefined && now - last < this.touchEveryMs) return;
    this.touched.set(id, now);
    this.sql
      .query("UPDATE api_keys SET last_used_at = now() WHERE id = $1::uuid", [id])
      .catch((err: unknown) => this.options.onTouchError?.(err));
  }
}
