/** What `messaging creds` does; the commands and their flags are declared in creds.ts, which loads this when one runs. */
import { readFileSync } from "node:fs";
import type { ServiceConfig } from "../../src/providers/config.ts";
import { CREDENTIAL_NAMES, isProviderName } from "../../src/providers/kinds.ts";
import type { DatabaseHandle } from "../../src/db/client.ts";
import { type CredentialListing, listCredentials, parseOverlap, reencryptAll, storeCredential } from "../../src/security/credential-admin.ts";
import { configuredMasterKeys, type MasterKeys, MasterKeyError, masterKeysOrGenerate } from "../../src/security/master-key-source.ts";
import { UsageError } from "../exit.ts";
import { DEFAULT_OVERLAP, KNOWN_NAMES, type RotateOptions } from "./creds.ts";

/** Larger than any provider secret; a bigger file is a wrong file. */
const MAX_VALUE_BYTES = 64 * 1024;

/** `creds set PROVIDER NAME --value-file F`: a new value, replacing every earlier one at once. */
export async function setValue(database: DatabaseHandle, config: ServiceConfig, provider: string, name: string, valueFile: string): Promise<void> {
  checkTarget(config, provider, name);
  const value = await readValue(valueFile);
  const master = keysToEncrypt(config);
  const stored = await storeCredential(database.sql, master.keys, { provider, name, value });
  const replaced = stored.version > 1 ? "; earlier versions no longer verify" : "";
  console.log(`stored ${provider}/${name} v${stored.version} (master key ${master.keys[0]!.id})${replaced}`);
}

/** `creds list [--json]`: names, versions, key ids and dates, never a value. */
export async function list(database: DatabaseHandle, json: boolean): Promise<void> {
  const all = await listCredentials(database.sql);
  if (json) console.log(JSON.stringify(all.map(listed)));
  else if (all.length === 0) console.log("no credentials stored");
  else for (const c of all) for (const line of lines(c)) console.log(line);
}

/** `creds rotate` (every value under the first master key) or `creds rotate PROVIDER NAME` (a new value). */
export async function rotate(database: DatabaseHandle, config: ServiceConfig, provider: string | undefined, name: string | undefined, options: RotateOptions): Promise<void> {
  if (provider === undefined) return rotateMasterKey(database, config, options);
  if (name === undefined) usage("creds rotate PROVIDER needs NAME and --value-file (or no arguments, to re-encrypt under the first master key)");
  return rotateValue(database, config, provider, name, options);
}

/** `creds rotate`: every stored value under the first master key, so the others can be removed. */
async function rotateMasterKey(database: DatabaseHandle, config: ServiceConfig, options: RotateOptions): Promise<void> {
  if (options.valueFile !== undefined || options.overlap !== undefined) usage("--value-file and --overlap need PROVIDER NAME");
  const master = configuredMasterKeys(config) ?? noMasterKey();
  const { total, moved } = await reencryptAll(database.sql, master.keys);
  console.log(`re-encrypted ${moved} of ${total} credential version(s) under master key ${master.keys[0]!.id}`);
  if (master.keys.length > 1) {
    process.stderr.write(`messaging: every credential is now under ${master.keys[0]!.id}; the other keys in ${master.origin} can be removed\n`);
  }
}

/** `creds rotate PROVIDER NAME`: a new current value, the previous one verifying until the overlap ends. */
async function rotateValue(database: DatabaseHandle, config: ServiceConfig, provider: string, name: string, options: RotateOptions): Promise<void> {
  if (options.valueFile === undefined) usage("creds rotate PROVIDER NAME needs --value-file FILE (`-` reads stdin)");
  const overlapMs = parseOverlap(options.overlap ?? DEFAULT_OVERLAP);
  if (overlapMs === null) usage(`--overlap takes a duration such as 24h, 30m, 90s or 0 (at most 365d); got "${options.overlap}"`);
  checkTarget(config, provider, name);
  const value = await readValue(options.valueFile);
  const master = keysToEncrypt(config);
  const stored = await storeCredential(database.sql, master.keys, { provider, name, value, overlapMs });
  if (stored.version === 1) process.stderr.write(`messaging: ${provider}/${name} had no earlier value; stored as its first\n`);
  const until = stored.previousVerifiesUntil ? `; v${stored.version - 1} verifies inbound signatures until ${stored.previousVerifiesUntil.toISOString()}` : "";
  console.log(`stored ${provider}/${name} v${stored.version} (master key ${master.keys[0]!.id})${until}`);
}

function usage(message: string): never {
  throw new UsageError(message);
}

function noMasterKey(): never {
  throw new MasterKeyError("no master key is configured: set MESSAGING_MASTER_KEYS or MESSAGING_MASTER_KEYS_FILE (the keys every instance uses)");
}

/** The keys to encrypt with; on the embedded database with none, the one generated now (and said so). */
function keysToEncrypt(config: ServiceConfig): MasterKeys {
  const master = masterKeysOrGenerate(config) ?? noMasterKey();
  if (master.generated) process.stderr.write(`messaging: no master key was configured, so one was generated in ${master.generated} (mode 0600); back it up with the data directory\n`);
  return master;
}

/**
 * A credential the service can use: a configured provider's own names (an unknown one is a typo), or, for a
 * provider not configured yet (secrets may be stored before the config names it), one of the names any kind uses.
 */
function checkTarget(config: ServiceConfig, provider: string, name: string): void {
  if (!isProviderName(provider)) usage(`"${provider}" is not a provider name (lower-case letters, digits, - and _)`);
  const configured = config.providers.find((p) => p.name === provider);
  if (configured) {
    const names = CREDENTIAL_NAMES[configured.kind];
    if (names.length === 0) usage(`provider ${provider} (${configured.kind}) takes no credentials`);
    if (!names.includes(name)) usage(`provider ${provider} (${configured.kind}) has no credential "${name}"; its credentials are ${names.join(", ")}`);
    return;
  }
  if (!KNOWN_NAMES.includes(name)) usage(`"${name}" is not a credential name; the names are ${KNOWN_NAMES.join(", ")}`);
  process.stderr.write(`messaging: provider ${provider} is not in the configuration; storing its ${name} for when it is\n`);
}

/** The value in `file` (`-`: stdin) as UTF-8 text, without one trailing newline; refused when empty or not text. */
async function readValue(file: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = file === "-" ? await Bun.stdin.bytes() : readFileSync(file);
  } catch (err) {
    usage(`--value-file ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if (bytes.length > MAX_VALUE_BYTES) usage(`--value-file ${file}: larger than ${MAX_VALUE_BYTES} bytes`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    usage(`--value-file ${file}: not UTF-8 text`);
  }
  const value = text.replace(/\r?\n$/, "");
  if (value === "") usage(`--value-file ${file}: the value is empty`);
  return value;
}

function listed(c: CredentialListing) {
  return {
    provider: c.provider,
    name: c.name,
    versions: c.versions.map((v, i) => ({
      version: v.version,
      state: i === 0 ? "current" : "verifying",
      key_id: v.keyId,
      created_at: v.createdAt.toISOString(),
      verify_until: v.verifyUntil?.toISOString() ?? null,
    })),
  };
}

function lines(c: CredentialListing): string[] {
  return c.versions.map((v, i) =>
    [
      `${c.provider}/${c.name}`,
      `v${v.version}`,
      i === 0 ? "current" : `verifies until ${v.verifyUntil!.toISOString()}`,
      `master key ${v.keyId}`,
      `created ${v.createdAt.toISOString()}`,
    ].join("  "),
  );
}
