// Type declarations for the PGlite assets imported by ./embedded.ts with
// `with { type: "file" }`. Bun turns such an import into the file's path (a
// real path under `bun run`, a `/$bunfs/...` path inside a compiled binary).
// Declared by exact specifier rather than "*.wasm" so nothing else picks them up.

declare module "@electric-sql/pglite/pglite.wasm" {
  const path: string;
  export default path;
}

declare module "@electric-sql/pglite/initdb.wasm" {
  const path: string;
  export default path;
}

declare module "@electric-sql/pglite/pglite.data" {
  const path: string;
  export default path;
}
