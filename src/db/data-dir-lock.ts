import { closeSync, constants, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OperatorError } from "../operator-error.ts";
import { asDataDirError, DataDirError } from "./data-dir-error.ts";
import { tryLockExclusive } from "./flock.ts";

/**
 * PGlite gives no protection against two processes opening one data directory, which would corrupt it.
 * So the process holds an exclusive `flock` on the data directory itself for as long as it has the database
 * open. The kernel decides who holds it and releases it when the holder's descriptor is closed or the holder
 * dies, however it dies: two processes starting at once cannot both win, and a dead holder leaves nothing to
 * clean up. Locking the directory rather than a file in it means no file can be deleted or replaced to let a
 * second process in. `messaging.pid` in the directory only names the holder in the error message; whatever
 * pid it holds (stale, or reused by an unrelated live process) is never trusted.
 */
const PID_FILE = "messaging.pid";

/** Another live process holds the embedded database: an operator error (one line, exit 2), not a crash. */
export class DataDirInUseError extends OperatorError {
  override name = "DataDirInUseError";
  constructor(
    readonly dataDir: string,
    /** The holder's pid as it wrote it, if it has yet. */
    readonly pid: number | undefined,
  ) {
    super(
      `data directory ${dataDir} is in use by ${pid ? `process ${pid}` : "another process"}; the embedded database allows one process`,
    );
  }
}

/**
 * Takes the data directory for this process, or throws DataDirInUseError; a directory that cannot be created,
 * opened, locked or written throws DataDirError naming what is wrong. Returns the release function.
 */
export function lockDataDir(dataDir: string): () => void {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (err) {
    throw asDataDirError(dataDir, "cannot be created", err);
  }
  let fd: number;
  try {
    fd = openSync(dataDir, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0));
  } catch (err) {
    throw asDataDirError(dataDir, "cannot be opened", err);
  }
  let locked: boolean;
  try {
    locked = tryLockExclusive(fd);
  } catch (err) {
    closeSync(fd);
    throw new DataDirError(dataDir, `cannot be locked: ${(err as Error).message}`);
  }
  const pidFile = join(dataDir, PID_FILE);
  if (!locked) {
    closeSync(fd);
    throw new DataDirInUseError(dataDir, holderPid(pidFile));
  }
  try {
    writeFileSync(pidFile, String(process.pid));
  } catch (err) {
    closeSync(fd);
    throw asDataDirError(dataDir, "cannot be written", err);
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    rmSync(pidFile, { force: true });
    closeSync(fd);
  };
}

function holderPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
