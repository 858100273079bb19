import { statSync } from "node:fs";
import { requiredSecrets, type ServiceConfig, twilioUnverifiable } from "../providers/config.ts";
import { rootCauseMessage } from "../db/availability.ts";
import { isCurrent } from "../db/migrate.ts";
import { credentialsProblem } from "../providers/readiness.ts";
import { CredentialStore } from "../security/credentials.ts";
import { configuredMasterKeys, embeddedKeyFile, type MasterKeys, MasterKeyError } from "../security/master-key-source.ts";
import type { DatabaseCheckContext } from "./database-checks.ts";
import type { CheckResult } from "./result.ts";

/**
 * What `messaging check` says about the credential store: where the master keys come from (a warning when there
 * are none), then, with the database open and migrated, whether every stored credential decrypts with them and
 * every configured provider has the credentials it needs.
 */
export function masterKeyCheck(config: ServiceConfig): CheckResult[] {
  const check = "master-key";
  let master: MasterKeys | null;
  try {
    master = configuredMasterKeys(config);
  } catch (err) {
    if (err instanceof MasterKeyError) return [{ check, status: "error", message: err.message }];
    throw err;
  }
  if (!master && config.databaseUrl) {
    return [{ check, status: "warn", message: "no master key is configured (MESSAGING_MASTER_KEYS or MESSAGING_MASTER_KEYS_FILE): provider credentials can be neither stored nor read" }];
  }
  if (!master) {
    return [{ check, status: "warn", message: `no master key is configured: \`serve\` generates one in ${embeddedKeyFile(config.dataDir)}; back it up with the data directory` }];
  }
  const ids = master.keys.map((k) => k.id).join(", ");
  const summary = `${master.keys.length} master key(s) from ${master.origin} (${ids}); ${master.keys[0]!.id} encrypts`;
  if (master.origin !== "MESSAGING_MASTER_KEYS" && (statSync(master.origin).mode & 0o077) !== 0) {
    return [{ check, status: "warn", message: `${summary}, but ${master.origin} is readable by other users (chmod 600 it)` }];
  }
  return [{ check, status: "ok", message: summary }];
}

/** The stored credentials against the master keys and the configured providers (the database must be current). */
export async function storedCredentialChecks({ config, database, migrations }: DatabaseCheckContext): Promise<CheckResult[]> {
  // The table may not exist yet; the migrations item already says so.
  if (!isCurrent(migrations)) return [];
  let keys: MasterKeys["keys"] = [];
  try {
    keys = configuredMasterKeys(config)?.keys ?? [];
  } catch {
    // masterKeyCheck reports an unusable key setting; here every stored credential is then unreadable.
  }
  const store = new CredentialStore(database.sql, keys);
  let total: number;
  let older: number;
  try {
    await store.load();
    const [count] = await database.sql.query<{ total: number; older: number }>(
      "SELECT count(*)::int AS total, (count(*) FILTER (WHERE key_id <> $1))::int AS older FROM provider_credentials",
      [keys[0]?.id ?? ""],
    );
    ({ total, older } = count!);
  } catch (err) {
    return [{ check: "credentials", status: "error", message: `cannot read the stored credentials: ${rootCauseMessage(err)}` }];
  }
  const out: CheckResult[] = [];
  const unreadable = store.unreadable();
  if (unreadable.length > 0) {
    const named = unreadable.slice(0, 3).map((e) => e.message).join("; ") + (unreadable.length > 3 ? "; …" : "");
    out.push({ check: "credentials", status: "error", message: `${unreadable.length} of ${total} stored credential version(s) do not decrypt: ${named}` });
  } else if (total > 0 && older > 0) {
    out.push({ check: "credentials", status: "warn", message: `${total} stored credential version(s) decrypt; ${older} are under an older master key (run \`messaging creds rotate\`)` });
  } else {
    out.push({ check: "credentials", status: "ok", message: `${total} stored credential version(s), all decrypt with the configured master key` });
  }
  const missing = credentialsProblem(config.providers, store, keys.length > 0);
  // Twilio signs its webhooks with the account's auth token even when an API key sends: without one, every
  // status callback and inbound message is refused (401), though sending works.
  const unverifiable = twilioUnverifiable(config.providers.filter((p) => p.kind === "twilio"), (provider, name) => store.has(provider, name));
  if (missing !== undefined) out.push({ check: "provider-credentials", status: "error", message: missing });
  else if (unverifiable.length > 0) {
    const names = unverifiable.map((p) => p.name).join(", ");
    out.push({ check: "provider-credentials", status: "warn", message: `${names} send with an API key but have no auth_token stored, which verifies Twilio's webhooks: every status callback and inbound message will be refused (\`messaging creds set ${unverifiable[0]!.name} auth_token --value-file F\`)` });
  } else if (config.providers.some((p) => requiredSecrets(p).length > 0)) {
    out.push({ check: "provider-credentials", status: "ok", message: "every configured provider has the credentials it needs" });
  }
  return out;
}
