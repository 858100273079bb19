/**
 * The house's import rules (docs/architecture.md, "Imports"), checked by dependency-cruiser on every
 * `bun run test` (`bun run deps`) instead of by memory. Type-only imports count: a type is still a dependency.
 */
module.exports = {
  forbidden: [
    {
      name: "no-circular-across-folders",
      severity: "error",
      comment:
        "No import circle across folders (a module of src/modules/ is its own folder): a cycle that leaves its folder ties two layers together. A cycle inside one folder (a service and the files of its operations) is that folder's business.",
      from: { path: "^(src/modules/[^/]+|src/[^/]+|cli/[^/]+)/" },
      to: { circular: true, via: { pathNot: "^$1/" } },
    },
    {
      name: "no-circular-through-root-files",
      severity: "error",
      comment: "The files at the top of src/ and cli/ (app, server, the wirings, main) sit above every folder: none is part of a cycle.",
      from: { path: "^(src|cli)/[^/]+$" },
      to: { circular: true },
    },
    {
      name: "domain-imports-nothing-of-ours",
      severity: "error",
      comment: "src/domain/ holds pure rules: it imports only itself (and libraries).",
      from: { path: "^src/domain/" },
      to: { path: "^(src|cli)/", pathNot: "^src/domain/" },
    },
    {
      name: "providers-run-no-sql",
      severity: "error",
      comment: "src/providers/ never imports src/db/: what a provider keeps in the database is its module's (src/modules/provider-mock/).",
      from: { path: "^src/providers/" },
      to: { path: "^src/db/" },
    },
    {
      name: "config-at-the-bottom",
      severity: "error",
      comment: "src/config/ imports nothing above it: only itself, src/domain/ and the one-class src/operator-error.ts.",
      from: { path: "^src/config/" },
      to: { path: "^(src|cli)/", pathNot: ["^src/config/", "^src/domain/", "^src/operator-error\\.ts$"] },
    },
    {
      name: "egress-without-config",
      severity: "error",
      comment: "src/security/egress.ts is given its settings; it does not read the configuration.",
      from: { path: "^src/security/egress\\.ts$" },
      to: { path: "^src/config/" },
    },
    {
      name: "http-never-imports-modules",
      severity: "error",
      comment: "src/http/ holds cross-cutting plugins; the modules use them, never the other way round.",
      from: { path: "^src/http/" },
      to: { path: "^src/modules/" },
    },
    {
      name: "src-never-imports-cli",
      severity: "error",
      comment: "The service does not depend on its command line.",
      from: { path: "^src/" },
      to: { path: "^cli/" },
    },
    {
      name: "not-to-unresolvable",
      severity: "error",
      comment: "An import that resolves to nothing is a typo or a missing dependency.",
      from: { path: "^(src|cli)/" },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // TypeScript 7 has no JavaScript API for dependency-cruiser yet, so sources are parsed with swc.
    parser: "swc",
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    // Packages' subpath exports (`@electric-sql/pglite/nodefs`, `nodemailer/lib/addressparser`), as Bun resolves them.
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["bun", "import", "require", "node", "default"] },
    exclude: { path: "(^|/)(node_modules|dist)/" },
  },
};
