/**
 * The embedded database's initdb, run once at build time instead of at every first start: `bun run build` makes a
 * fresh cluster with the PGlite it bundles, in memory, and embeds its data directory in the binary as a gzipped
 * tarball. A binary's first start on an empty data directory unpacks it (src/db/embedded.ts) instead of running
 * initdb, and then migrates as usual.
 *
 * initdb took about 1.9 s of a 4 s first start here; unpacking the 40 MB takes about 0.4 s. What initdb writes
 * depends on the PGlite build alone (C locale, UTC, the same settings on every machine), and it holds nothing of
 * ours: no schema, no key, no secret (migrations run at first start; the cursor secret, the API key and the master
 * key are made at run time). Every data directory a binary creates this way shares the cluster's system identifier,
 * which only WAL shipping between clusters would look at, and PGlite has none. That identifier (initdb draws it from
 * the clock) and the files' times differ from build to build, so two builds of one commit differ in those bytes.
 */
import { writeFileSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";

/** The file's name when embedded (Bun adds a content hash before the extension); src/db/embedded.ts looks for it. */
export const PGDATA_TEMPLATE_FILE = "pgdata-template.tar.gz";

/** Writes the tarball of a fresh cluster's data directory to `path`. */
export async function writeInitdbTemplate(path: string): Promise<void> {
  const pg = await PGlite.create();
  try {
    // A consistent image: everything initdb and the first start wrote is in the files, nothing left to replay.
    await pg.exec("CHECKPOINT");
    const tar = await pg.dumpDataDir("none");
    writeFileSync(path, Bun.gzipSync(new Uint8Array(await tar.arrayBuffer())));
  } finally {
    await pg.close();
  }
}
