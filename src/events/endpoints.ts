/**
 * The endpoint registry (SPEC §10): where events are POSTed, which types each endpoint wants, and its signing
 * secret. A secret is kept in the provider credential store (security/credential-admin.ts) as
 * `event-endpoint:<id>/signing_secret`, so it is encrypted under the same master keys, re-encrypted by
 * `messaging creds rotate`, and read by every instance from the store it already polls; a rotation keeps the
 * previous version verifying (here: signing beside the new one) for the overlap.
 *
 * Shared by the HTTP routes (modules/events) and the CLI (`messaging events endpoints …`).
 */
import { randomBytes } from "node:crypto";
import { rfc3339Utc } from "../db/json-sql.ts";
import type { SqlRunner } from "../db/runner.ts";
import { textArray } from "../db/sql-arrays.ts";
import { storeCredential } from "../security/credential-admin.ts";
import { CREDENTIALS_CHANNEL } from "../security/credentials.ts";
import { type Egress, EgressRefusedError } from "../security/egress.ts";
import type { MasterKey } from "../security/keyring.ts";

/** The credential-store name of an endpoint's secret. */
export const secretProvider = (endpointId: string) => `event-endpoint:${endpointId}`;
export const SECRET_NAME = "signing_secret";

/** How long a rotated-out secret keeps signing beside the new one. */
export const ROTATION_OVERLAP_MS = 24 * 3_600_000;

/** A new signing secret: `whsec_` and 256 random bits. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString("base64url")}`;
}

/** An endpoint as listed: never its secret. */
export interface EndpointItem {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  created_at: string;
  disabled_at: string | null;
  disabled_reason: string | null;
  failing_since: string | null;
  last_delivery: { at: string; outcome: string; status_code: number | null; error: string | null } | null;
  /** Events routed to it and not yet delivered (given-up ones included: `enable` sends them again). */
  pending: number;
}

/** Why an endpoint cannot be registered or changed; the routes turn these into 4xx answers. */
export class EndpointError extends Error {
  override name = "EndpointError";
  constructor(
    readonly kind: "url_not_allowed" | "not_found" | "no_master_key",
    message: string,
  ) {
    super(message);
  }
}

export interface EndpointDeps {
  sql: SqlRunner;
  /** Master keys of the credential store (the first encrypts); empty when none is configured. */
  keys: readonly MasterKey[];
  egress: Pick<Egress, "check">;
}

/** The guard's verdict on a URL, resolving its host as a delivery would: undefined when allowed. */
export async function urlRefusal(egress: Pick<Egress, "check">, url: string): Promise<string | undefined> {
  try {
    await egress.check(url);
    return undefined;
  } catch (err) {
    if (err instanceof EgressRefusedError) return err.message;
    throw err;
  }
}

const ITEM = `json_build_object(
  'id', ep.id::text, 'url', ep.url, 'events', to_json(ep.events), 'description', ep.description,
  'created_at', ${rfc3339Utc("ep.created_at")},
  'disabled_at', CASE WHEN ep.disabled_at IS NOT NULL THEN ${rfc3339Utc("ep.disabled_at")} END,
  'disabled_reason', ep.disabled_reason,
  'failing_since', CASE WHEN ep.failing_since IS NOT NULL THEN ${rfc3339Utc("ep.failing_since")} END,
  'last_delivery', CASE WHEN ep.last_attempt_at IS NOT NULL THEN json_build_object(
     'at', ${rfc3339Utc("ep.last_attempt_at")}, 'outcome', ep.last_outcome, 'status_code', ep.last_status_code, 'error', ep.last_error) END,
  'pending', (SELECT count(*) FROM event_deliveries d WHERE d.endpoint_id = ep.id)::int)::text`;

const NOTIFY = `SELECT pg_notify('${CREDENTIALS_CHANNEL}', '')`;

/**
 * Registers an endpoint after the egress guard has passed its URL (resolving its host, as every delivery will
 * again). The row and its encrypted secret commit together; the secret is returned this once.
 */
export async function createEndpoint(
  deps: EndpointDeps,
  input: { url: string; events: readonly string[]; description?: string | null | undefined },
): Promise<EndpointItem & { secret: string }> {
  if (deps.keys.length === 0) throw new EndpointError("no_master_key", "no master key is configured (MESSAGING_MASTER_KEYS): endpoint secrets cannot be stored");
  const refusal = await urlRefusal(deps.egress, input.url);
  if (refusal !== undefined) throw new EndpointError("url_not_allowed", `the egress guard refuses this URL: ${refusal}`);
  const secret = newSigningSecret();
  const id = await deps.sql.transaction(async (tx) => {
    const [row] = await tx.query<{ id: string }>(
      "INSERT INTO event_endpoints (url, events, description) VALUES ($1, $2::text[], $3) RETURNING id::text AS id",
      [input.url, textArray([...new Set(input.events)]), input.description ?? null],
    );
    await storeCredential(tx, deps.keys, { provider: secretProvider(row!.id), name: SECRET_NAME, value: secret });
    return row!.id;
  });
  const item = await getEndpoint(deps.sql, id);
  return { ...item!, secret };
}

/** Every endpoint, oldest first, without secrets. */
export async function listEndpoints(sql: SqlRunner): Promise<EndpointItem[]> {
  const rows = await sql.query<{ item: string }>(`SELECT ${ITEM} AS item FROM event_endpoints ep ORDER BY ep.id`);
  return rows.map((r) => JSON.parse(r.item) as EndpointItem);
}

export async function getEndpoint(sql: SqlRunner, id: string): Promise<EndpointItem | undefined> {
  if (!isEndpointId(id)) return undefined;
  const [row] = await sql.query<{ item: string }>(`SELECT ${ITEM} AS item FROM event_endpoints ep WHERE ep.id = $1::text::bigint`, [id]);
  return row && (JSON.parse(row.item) as EndpointItem);
}

/** Removes an endpoint, its undelivered events' deliveries and its secret. False when there was none. */
export async function deleteEndpoint(sql: SqlRunner, id: string): Promise<boolean> {
  if (!isEndpointId(id)) return false;
  return sql.transaction(async (tx) => {
    const gone = await tx.query("DELETE FROM event_endpoints WHERE id = $1::text::bigint RETURNING id", [id]);
    if (gone.length === 0) return false;
    await tx.query("DELETE FROM provider_credentials WHERE provider = $1", [secretProvider(id)]);
    await tx.query(NOTIFY);
    return true;
  });
}

/** A new secret for the endpoint; the previous one keeps signing beside it for ROTATION_OVERLAP_MS. */
export async function rotateEndpointSecret(deps: Omit<EndpointDeps, "egress">, id: string): Promise<{ id: string; secret: string; previous_secret_expires_at: string | null }> {
  if (deps.keys.length === 0) throw new EndpointError("no_master_key", "no master key is configured (MESSAGING_MASTER_KEYS): endpoint secrets cannot be stored");
  if (!(await getEndpoint(deps.sql, id))) throw new EndpointError("not_found", `event endpoint ${id} does not exist`);
  const secret = newSigningSecret();
  const stored = await storeCredential(deps.sql, deps.keys, { provider: secretProvider(id), name: SECRET_NAME, value: secret, overlapMs: ROTATION_OVERLAP_MS });
  return { id, secret, previous_secret_expires_at: stored.previousVerifiesUntil?.toISOString() ?? null };
}

/**
 * Enables an endpoint (again): its undelivered events, given-up ones included, are due at once with a fresh
 * retry window, and its failure clock restarts.
 */
export async function enableEndpoint(sql: SqlRunner, id: string): Promise<EndpointItem> {
  if (!isEndpointId(id)) throw new EndpointError("not_found", `event endpoint ${id} does not exist`);
  const found = await sql.transaction(async (tx) => {
    const rows = await tx.query(
      "UPDATE event_endpoints SET disabled_at = NULL, disabled_reason = NULL, failing_since = NULL WHERE id = $1::text::bigint RETURNING id",
      [id],
    );
    if (rows.length === 0) return false;
    await tx.query(
      `UPDATE event_deliveries SET gave_up_at = NULL, run_at = now(), first_at = now(), attempts = 0
        WHERE endpoint_id = $1::text::bigint AND (gave_up_at IS NOT NULL OR run_at > now())`,
      [id],
    );
    return true;
  });
  if (!found) throw new EndpointError("not_found", `event endpoint ${id} does not exist`);
  return (await getEndpoint(sql, id))!;
}

function isEndpointId(id: string): boolean {
  return /^[1-9]\d{0,17}$/.test(id);
}
