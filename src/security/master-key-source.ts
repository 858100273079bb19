import { closeSync, constants, fsyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { OperatorError } from "../operator-error.ts";
import { generateMasterKey, type MasterKey, masterKeysFromFile } from "./keyring.ts";

/**
 * Where the credential store's master keys come from: `MESSAGING_MASTER_KEYS`, else the file
 * `MESSAGING_MASTER_KEYS_FILE`, else (embedded database only) `master.keys` in the data directory, which the
 * first `serve` or `creds set` generates. PostgreSQL gets no generated key: several machines share its rows, and a
 * key written on one of them would be missing on the others.
 */

/** A master key setting that cannot be used; the message is one line naming the setting or file, never a key. */
export class MasterKeyError extends OperatorError {
  override name = "MasterKeyError";
}

export interface MasterKeySettings {
  masterKeys?: readonly MasterKey[] | undefined;
  masterKeysFile?: string | undefined;
  databaseUrl?: string | undefined;
  dataDir: string;
}

export interface MasterKeys {
  /** The first encrypts, all decrypt. */
  keys: readonly MasterKey[];
  /** Where they were read, for logs and `check` (a setting's name or a path). */
  origin: string;
}

/** The key file of the embedded database, beside its data. */
export const embeddedKeyFile = (dataDir: string): string => join(dataDir, "master.keys");

/** The configured master keys, or null when none are (and, embedded, none was generated yet). */
export function configuredMasterKeys(settings: MasterKeySettings): MasterKeys | null {
  if (settings.masterKeys !== undefined) return { keys: settings.masterKeys, origin: "MESSAGING_MASTER_KEYS" };
  if (settings.masterKeysFile !== undefined) return readKeyFile(settings.masterKeysFile, `MESSAGING_MASTER_KEYS_FILE ${settings.masterKeysFile}`);
  if (settings.databaseUrl) return null;
  const path = embeddedKeyFile(settings.dataDir);
  try {
    return readKeyFile(path, path);
  } catch (err) {
    if (err instanceof MasterKeyError && (err.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT") return null;
    throw err;
  }
}

/**
 * The configured master keys; on the embedded database with none, a new one generated into its data directory
 * (which must exist: call this once the database is open, under its lock). `generated` is the path then.
 */
export function masterKeysOrGenerate(settings: MasterKeySettings): (MasterKeys & { generated?: string }) | null {
  const configured = configuredMasterKeys(settings);
  if (configured || settings.databaseUrl) return configured;
  const path = embeddedKeyFile(settings.dataDir);
  if (!writeNewKeyFile(path)) return readKeyFile(path, path); // another process wrote it first
  return { ...readKeyFile(path, path), generated: path };
}

function readKeyFile(path: string, label: string): MasterKeys {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new MasterKeyError(`${label}: cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`, { cause: err });
  }
  const parsed = masterKeysFromFile(text);
  if ("problem" in parsed) throw new MasterKeyError(`${label}: ${parsed.problem}`);
  return { keys: parsed.keys, origin: path };
}

/**
 * Creates the key file with mode 0600, exclusively (false when it already exists), and syncs it before anything is
 * encrypted with its key: a key lost in a crash would make every credential stored under it unreadable.
 */
function writeNewKeyFile(path: string): boolean {
  const id = `embedded-${new Date().toISOString().slice(0, 10).replaceAll("-", "")}`;
  const text = [
    `# Master key of the messaging credential store, generated on ${new Date().toISOString()}.`,
    "# Back it up with the data directory: without it the stored provider credentials cannot be read.",
    "# To rotate: add a new `id:base64key` line first, run `messaging creds rotate`, then delete the old line.",
    generateMasterKey(id),
    "",
  ].join("\n");
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw new MasterKeyError(`${path}: cannot be created (${(err as NodeJS.ErrnoException).code ?? "error"})`, { cause: err });
  }
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}
