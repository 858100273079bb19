import { accessSync, constants, existsSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { OperatorError } from "../operator-error.ts";

/**
 * The embedded database's data directory cannot be used: it cannot be created, written or locked. An operator
 * error (one line naming the path and what is wrong, exit 2, no stack) for `serve` and every admin command, and
 * the same sentence in `check`.
 */
export class DataDirError extends OperatorError {
  override name = "DataDirError";
  constructor(
    readonly dataDir: string,
    readonly problem: string,
  ) {
    super(`data directory ${dataDir} ${problem}`);
  }
}

/** What went wrong, in words, by the errno the file system answered. */
const REASONS: Record<string, string> = {
  EROFS: "read-only file system",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  ENOTDIR: "a file is in the way (a path component is not a directory)",
  EEXIST: "a file is in its place",
  ELOOP: "too many symbolic links",
  ENAMETOOLONG: "the path is too long",
  EIO: "input/output error",
  ENOLCK: "the file system offers no locks",
};

/** The errno code of a file-system error or of one of its causes (PGlite wraps the host's error), if any. */
export function fileSystemCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code in REASONS) return code;
  }
  return undefined;
}

/**
 * `error` as a DataDirError when a file-system errno explains it (`step`: what was being done, e.g. "cannot be
 * written"); otherwise the error itself, unchanged.
 */
export function asDataDirError(dataDir: string, step: string, error: unknown): unknown {
  if (error instanceof DataDirError) return error;
  const code = fileSystemCode(error);
  if (code === undefined) return error;
  return new DataDirError(dataDir, `${step}: ${REASONS[code]} (${code})`);
}

/**
 * Throws the DataDirError `serve` would meet creating a data directory that does not exist yet: the nearest
 * existing ancestor must be a directory this process may write. Lets `check` say so without creating anything.
 */
export function assertDataDirCreatable(dataDir: string): void {
  let ancestor = dirname(resolve(dataDir));
  while (!existsSync(ancestor) && dirname(ancestor) !== ancestor) ancestor = dirname(ancestor);
  try {
    if (!statSync(ancestor).isDirectory()) throw Object.assign(new Error(`${ancestor} is not a directory`), { code: "ENOTDIR" });
    accessSync(ancestor, constants.W_OK);
  } catch (err) {
    throw asDataDirError(dataDir, "cannot be created", err);
  }
}
