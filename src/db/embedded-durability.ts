/**
 * Durable commits for the embedded database: a commit PGlite reports is on disk, not only in the page cache.
 *
 * Out of the box PGlite 0.5 loses acknowledged commits on power loss, for two reasons:
 *
 *   1. It starts PostgreSQL with `-F` (`fsync=off`), so PostgreSQL never asks for a sync at all, and
 *      checkpoints may recycle WAL whose changes never reached the data files on disk.
 *   2. Even with `fsync=on`, Emscripten's Node file system (NODEFS, which maps the WASM file system onto the
 *      host directory) turns the syncs into no-ops: `fdatasync()` is an empty syscall stub, and `fsync()`
 *      calls the stream's `fsync` operation, which NODEFS does not define.
 *
 * So the embedded database is started with PGlite's own parameters minus `-F`, with the WAL flushed by
 * `fsync()` (`wal_sync_method=fsync`: the one sync call that reaches a hook we can install; `fdatasync`'s stub is
 * compiled into PGlite and cannot be replaced without patching it), and {@link DurableNodeFS} gives NODEFS the
 * missing `fsync` operation: a real `fsync(2)` on the host file descriptor behind the stream.
 *
 * Group commit is unchanged: the send batcher writes many sends in one statement, which is one commit and one
 * WAL flush, so one sync covers the whole batch.
 */
import fs from "node:fs";
import { join } from "node:path";

import { PGlite } from "@electric-sql/pglite";
import { NodeFS } from "@electric-sql/pglite/nodefs";

/** PGlite's start parameters with fsync on, and the WAL flushed with `fsync()` (see the module comment). */
export const durableStartParams: readonly string[] = [
  ...PGlite.defaultStartParams.filter((param) => param !== "-F"),
  "-c",
  "fsync=on",
  "-c",
  "wal_sync_method=fsync",
  "-c",
  "synchronous_commit=on",
];

/** The settings {@link assertDurable} expects the running database to report. */
export const durableSettings = { fsync: "on", wal_sync_method: "fsync", synchronous_commit: "on" } as const;

/** The Emscripten options a PGlite file system hands on (PGlite does not export the type by name). */
type EmscriptenOpts = Parameters<NodeFS["init"]>[1];
type PreRunHook = NonNullable<EmscriptenOpts["preRun"]>[number];

/** The parts of Emscripten's NODEFS this file relies on (not in PGlite's public types). */
interface NodeFsInternals {
  stream_ops: { fsync?: (stream: { nfd?: number }) => number };
  tryFSOperation<T>(operation: () => T): T;
}

/** PGlite's Node file system, with `fsync()` inside PostgreSQL reaching the host disk. */
export class DurableNodeFS extends NodeFS {
  override async init(pg: PGlite, opts: EmscriptenOpts): Promise<{ emscriptenOpts: EmscriptenOpts }> {
    const { emscriptenOpts } = await super.init(pg, opts);
    return { emscriptenOpts: { ...emscriptenOpts, preRun: [...(emscriptenOpts.preRun ?? []), installHostFsync] } };
  }
}

/**
 * Runs before PostgreSQL starts (an Emscripten pre-run hook). Every file PostgreSQL opens under the data
 * directory is a NODEFS stream holding a host descriptor (`nfd`); its `fsync` operation is what `fsync()`
 * ends in, so defining it makes each of PostgreSQL's syncs (WAL flush at commit, checkpoint, durable rename)
 * an `fsync(2)` of the same host file. A host error becomes the errno PostgreSQL sees (and, as on any
 * PostgreSQL, a failed WAL sync stops the database rather than acknowledging an unsynced commit).
 */
const installHostFsync: PreRunHook = (mod) => {
  const nodefs = (mod as unknown as { NODEFS?: NodeFsInternals }).NODEFS;
  if (!nodefs?.stream_ops || typeof nodefs.tryFSOperation !== "function") {
    throw new Error("this PGlite build exposes no NODEFS file system; embedded commits cannot be made durable");
  }
  nodefs.stream_ops.fsync = (stream) => {
    if (stream.nfd !== undefined) nodefs.tryFSOperation(() => fs.fsyncSync(stream.nfd!));
    return 0;
  };
};

/** Throws unless the running embedded database syncs its commits (guards against a PGlite upgrade undoing it). */
export async function assertDurable(db: PGlite): Promise<void> {
  for (const [name, expected] of Object.entries(durableSettings)) {
    const { rows } = await db.query<Record<string, string>>(`show ${name}`);
    const actual = rows[0]?.[name];
    if (actual !== expected) throw new Error(`embedded database runs with ${name}=${actual}, expected ${expected}`);
  }
}

/**
 * Syncs every file and directory under `dir`, then `dir`'s own entry in its parent. A fresh cluster is
 * written by PGlite's initdb through plain writes, and PostgreSQL syncs only what it changes itself, so
 * without this a power cut soon after first start-up could leave committed WAL next to a half-written catalog.
 */
export function syncDirectoryTree(dir: string): void {
  const visit = (path: string) => {
    for (const entry of fs.readdirSync(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) visit(child);
      else if (entry.isFile()) syncPath(child);
    }
    syncPath(path);
  };
  visit(dir);
  syncPath(join(dir, ".."));
}

function syncPath(path: string): void {
  const fd = fs.openSync(path, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
