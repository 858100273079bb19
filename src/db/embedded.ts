/**
 * Embedded PostgreSQL: PGlite (PostgreSQL compiled to WebAssembly) persisted
 * in a directory on the local disk.
 *
 * Why the assets are imported this way
 * ------------------------------------
 * PGlite needs three binary assets at start-up:
 *
 *   - `pglite.wasm`  the PostgreSQL server compiled to WebAssembly (~9 MB)
 *   - `initdb.wasm`  `initdb`, run once to create a fresh cluster (~0.3 MB)
 *   - `pglite.data`  the Emscripten file-system bundle: share/ files such as
 *                    the bootstrap catalog, timezone data, etc. (~6 MB)
 *
 * Left to itself, PGlite finds them with `new URL("./pglite.wasm",
 * import.meta.url)`, i.e. next to its own JavaScript in
 * `node_modules/@electric-sql/pglite/dist/`. That works under `bun run`, but
 * not in a binary made by `bun build --compile`: the bundler does not follow
 * those URLs, so the files would have to ship beside the executable (and
 * `import.meta.url` points into Bun's virtual `/$bunfs/` root anyway).
 *
 * Importing them with `with { type: "file" }` makes Bun treat them as assets:
 * under `bun run` the import evaluates to the file's real path in
 * node_modules, and under `bun build --compile` the bytes are embedded in the
 * executable and the import evaluates to a `/$bunfs/...` path that `Bun.file`
 * can read. We then hand PGlite the already-loaded assets
 * (`pgliteWasmModule`, `initdbWasmModule`, `fsBundle`) so it never goes
 * looking for files on disk. The result runs from any directory with nothing
 * beside it.
 *
 * (The TypeScript declarations for these three imports live in
 * `./embedded-assets.d.ts`.)
 *
 * Durability: PGlite as shipped neither asks for nor performs syncs, so a
 * commit would reach only the page cache; ./embedded-durability.ts turns
 * fsync on and makes it reach the host disk.
 *
 * Concurrency: PGlite is a single-connection, in-process database and offers
 * no protection against two processes opening the same data directory
 * (the `postmaster.pid` it writes holds a fixed fake pid, and a second
 * process opens the directory without complaint). Do not do that.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";

import { PGlite } from "@electric-sql/pglite";
import pgliteWasmPath from "@electric-sql/pglite/pglite.wasm" with { type: "file" };
import initdbWasmPath from "@electric-sql/pglite/initdb.wasm" with { type: "file" };
import pgliteDataPath from "@electric-sql/pglite/pglite.data" with { type: "file" };

import { assertDurable, DurableNodeFS, durableStartParams, syncDirectoryTree } from "./embedded-durability.ts";

interface CompiledAssets {
  pgliteWasmModule: WebAssembly.Module;
  initdbWasmModule: WebAssembly.Module;
}

let compiledAssets: Promise<CompiledAssets> | undefined;

/**
 * Compile the two WebAssembly modules once per process. A compiled
 * `WebAssembly.Module` can be instantiated any number of times, so opening
 * and re-opening databases (tests, restarts) does not pay the ~9 MB compile
 * again.
 */
function loadCompiledAssets(): Promise<CompiledAssets> {
  compiledAssets ??= (async () => {
    const [pgliteWasmModule, initdbWasmModule] = await Promise.all([
      Bun.file(pgliteWasmPath)
        .arrayBuffer()
        .then((bytes) => WebAssembly.compile(bytes)),
      Bun.file(initdbWasmPath)
        .arrayBuffer()
        .then((bytes) => WebAssembly.compile(bytes)),
    ]);
    return { pgliteWasmModule, initdbWasmModule };
  })();
  // Do not cache a failure: let the next call try again.
  compiledAssets.catch(() => {
    compiledAssets = undefined;
  });
  return compiledAssets;
}

/**
 * The data directory of a fresh cluster that `bun run build` made with this PGlite and embedded in the binary
 * (packaging/pgdata-template.ts): a first start unpacks it instead of running initdb (1.9 s here). Absent under
 * `bun run`, where initdb runs as before.
 */
function initdbTemplate(): Blob | undefined {
  return Bun.embeddedFiles.find((file) => (file as File).name.startsWith("pgdata-template"));
}

/**
 * Open (creating on first use: from the binary's initdb template, else by running initdb) a PGlite database persisted
 * in `dataDir`. The directory and its parents are created if missing.
 * Resolves once the database is ready to accept queries.
 *
 * Only one process may have a given `dataDir` open at a time (see the module
 * comment).
 *
 * Commits are durable: a statement that commits resolves only after its WAL
 * was synced to the host disk (see ./embedded-durability.ts).
 */
export async function openEmbeddedDatabase(dataDir: string): Promise<PGlite> {
  const dir = resolve(dataDir);
  await mkdir(dir, { recursive: true });

  const { pgliteWasmModule, initdbWasmModule } = await loadCompiledAssets();

  const fresh = !existsSync(join(dir, "PG_VERSION"));
  const template = fresh ? initdbTemplate() : undefined;
  try {
    const db = await PGlite.create({
      fs: new DurableNodeFS(dir),
      startParams: [...durableStartParams],
      pgliteWasmModule,
      initdbWasmModule,
      fsBundle: Bun.file(pgliteDataPath),
      ...(template ? { loadDataDir: template } : {}),
    });
    await db.waitReady;
    try {
      await assertDurable(db);
      if (fresh) syncDirectoryTree(dir);
    } catch (err) {
      await db.close();
      throw err;
    }
    return db;
  } catch (err) {
    throw new Error(
      `Could not open the embedded PostgreSQL database in ${dir}: ${
        err instanceof Error ? err.message : String(err)
      }`,
      { cause: err },
    );
  }
}

/** Close a database opened with {@link openEmbeddedDatabase}. Idempotent. */
export async function closeEmbeddedDatabase(db: PGlite): Promise<void> {
  if (db.closed) return;
  await db.close();
}
