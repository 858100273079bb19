/**
 * What a compiled binary bundles, as a CycloneDX 1.6 SBOM and a license verdict.
 *
 * The package list comes from the bundler's own metafile (`bun build --metafile`), not from package.json: a
 * dependency that is installed but never imported (types, the CLI of a dev tool, an optional peer) is not in the
 * binary and does not belong in its bill of materials, while a transitive package that is imported does. Versions
 * and licenses are read from each bundled package's package.json, the tarball hash from bun.lock.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

export interface BundledPackage {
  name: string;
  version: string;
  /** SPDX expression from package.json (`license`, or the legacy `licenses` array joined with AND). */
  license: string | undefined;
  /** Directory relative to the repository root, e.g. `node_modules/@scope/name`. */
  dir: string;
  purl: string;
  /** SHA-512 of the registry tarball as hex, from bun.lock's integrity. */
  sha512?: string;
  /** Names of the bundled packages this one imports (by its package.json dependencies). */
  dependsOn: string[];
  /** The repository's patch applied at install (`patchedDependencies`), if any. */
  patch?: string;
}

/** The metafile as `bun build --metafile` writes it; only the input paths matter here. */
export interface Metafile {
  inputs: Record<string, unknown>;
}

const NODE_MODULES = "node_modules/";

/** `node_modules/a/node_modules/@s/b/lib/x.js` → `node_modules/a/node_modules/@s/b` (the innermost package). */
export function packageDirOf(inputPath: string): string | undefined {
  const at = inputPath.lastIndexOf(NODE_MODULES);
  if (at < 0) return undefined;
  const rest = inputPath.slice(at + NODE_MODULES.length).split("/");
  const name = rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
  return name ? inputPath.slice(0, at + NODE_MODULES.length) + name : undefined;
}

/** Package URL of an npm package (the scope's `@` is percent-encoded, as the purl spec asks). */
export function npmPurl(name: string, version: string): string {
  return `pkg:npm/${name.replace(/^@/, "%40")}@${version}`;
}

function readJson(path: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
}

function licenseOf(pkg: Record<string, unknown>): string | undefined {
  if (typeof pkg.license === "string") return pkg.license;
  if (pkg.license && typeof pkg.license === "object" && "type" in pkg.license) return String(pkg.license.type);
  if (Array.isArray(pkg.licenses)) {
    const ids = pkg.licenses.map((l: { type?: string }) => l?.type).filter(Boolean);
    if (ids.length > 0) return ids.length === 1 ? ids[0] : `(${ids.join(" AND ")})`;
  }
  return undefined;
}

/** `name@version` → integrity, from bun.lock's `packages` table (entry: [ident, registry, info, integrity]). */
function lockIntegrities(root: string): Map<string, string> {
  const lock = Bun.JSONC.parse(readFileSync(join(root, "bun.lock"), "utf8")) as { packages?: Record<string, unknown[]> };
  const out = new Map<string, string>();
  for (const entry of Object.values(lock.packages ?? {})) {
    const [ident, , , integrity] = entry;
    if (typeof ident === "string" && typeof integrity === "string") out.set(ident, integrity);
  }
  return out;
}

function sha512Hex(integrity: string | undefined): string | undefined {
  if (!integrity?.startsWith("sha512-")) return undefined;
  return Buffer.from(integrity.slice("sha512-".length), "base64").toString("hex");
}

/** Node's resolution from a package directory: its own node_modules, then each parent's. */
function resolveFrom(root: string, fromDir: string, name: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, NODE_MODULES, name);
    if (existsSync(join(root, candidate, "package.json"))) return candidate;
    if (dir === "." || dir === "/" || dir === "") return undefined;
  }
}

/** The npm packages a build bundled, sorted by name then version. */
export function bundledPackages(root: string, metafile: Metafile): BundledPackage[] {
  const dirs = new Set<string>();
  for (const input of Object.keys(metafile.inputs)) {
    const dir = packageDirOf(input);
    if (dir) dirs.add(dir);
  }
  const integrities = lockIntegrities(root);
  const patches = (readJson(join(root, "package.json")).patchedDependencies ?? {}) as Record<string, string>;
  const byDir = new Map<string, BundledPackage>();
  for (const dir of dirs) {
    const pkg = readJson(join(root, dir, "package.json"));
    const name = String(pkg.name);
    const version = String(pkg.version);
    byDir.set(dir, {
      name,
      version,
      license: licenseOf(pkg),
      dir,
      purl: npmPurl(name, version),
      sha512: sha512Hex(integrities.get(`${name}@${version}`)),
      dependsOn: Object.keys({ ...(pkg.dependencies as object), ...(pkg.optionalDependencies as object), ...(pkg.peerDependencies as object) }),
      patch: patches[`${name}@${version}`],
    });
  }
  for (const p of byDir.values()) {
    p.dependsOn = p.dependsOn
      .map((dep) => resolveFrom(root, p.dir, dep))
      .flatMap((dir) => (dir && byDir.has(dir) ? [byDir.get(dir)!.purl] : []))
      .sort();
  }
  return [...byDir.values()].sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

export interface SbomSubject {
  name: string;
  version: string;
  /** The Bun runtime compiled into the executable. */
  bunVersion: string;
  /** Names of the application's own direct dependencies (package.json `dependencies`). */
  directDependencies: string[];
  /** ISO timestamp of the build (SOURCE_DATE_EPOCH when set, for reproducible output). */
  timestamp: string;
}

/** A CycloneDX 1.6 JSON document for the binary: the application, the Bun runtime and every bundled package. */
export function cycloneDx(subject: SbomSubject, packages: BundledPackage[]): Record<string, unknown> {
  const appRef = npmPurl(subject.name, subject.version);
  const bunRef = `pkg:generic/bun@${subject.bunVersion}`;
  const licenses = (expression: string | undefined) =>
    expression === undefined ? undefined : /^[\w.+-]+$/.test(expression) ? [{ license: { id: expression } }] : [{ expression }];
  return {
    bomFormat: "CycloneDX",
    specVersion: "1.6",
    serialNumber: `urn:uuid:${crypto.randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: subject.timestamp,
      tools: { components: [{ type: "application", name: "messaging packaging/sbom.ts" }] },
      component: { type: "application", "bom-ref": appRef, name: subject.name, version: subject.version, purl: appRef },
    },
    components: [
      {
        type: "platform",
        "bom-ref": bunRef,
        name: "bun",
        version: subject.bunVersion,
        purl: bunRef,
        description: "JavaScript runtime compiled into the executable by `bun build --compile` (it links JavaScriptCore, LGPL-2.0)",
        licenses: [{ license: { id: "MIT" } }],
        externalReferences: [{ type: "website", url: "https://bun.com" }],
      },
      ...packages.map((p) => ({
        type: "library",
        "bom-ref": p.purl,
        name: p.name,
        version: p.version,
        purl: p.purl,
        ...(licenses(p.license) ? { licenses: licenses(p.license) } : {}),
        ...(p.sha512 ? { hashes: [{ alg: "SHA-512", content: p.sha512 }] } : {}),
        ...(p.patch ? { pedigree: { patches: [{ type: "unofficial", diff: { url: p.patch } }] } } : {}),
      })),
    ],
    dependencies: [
      {
        ref: appRef,
        dependsOn: [bunRef, ...packages.filter((p) => subject.directDependencies.some((name) => p.dir === NODE_MODULES + name)).map((p) => p.purl)],
      },
      ...packages.map((p) => ({ ref: p.purl, dependsOn: p.dependsOn })),
    ],
  };
}
