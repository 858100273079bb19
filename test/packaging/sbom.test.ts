import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkLicenses, expressionAllowed, licenseReport, readAllowlist } from "../../packaging/licenses.ts";
import { type BundledPackage, bundledPackages, cycloneDx, type Metafile, npmPurl, packageDirOf } from "../../packaging/sbom.ts";

const ROOT = join(import.meta.dir, "..", "..");
const ALLOWED = new Set(["MIT", "Apache-2.0", "BSD-3-Clause"]);

describe("SPDX expressions against the allowlist", () => {
  test.each([
    ["MIT", true],
    ["GPL-3.0-only", false],
    ["(MIT OR GPL-3.0-only)", true],
    ["GPL-3.0-only OR MIT", true],
    ["MIT AND GPL-3.0-only", false],
    ["MIT AND Apache-2.0", true],
    ["MIT AND (GPL-2.0-only OR BSD-3-Clause)", true],
    ["GPL-2.0-only OR MIT AND AGPL-3.0-only", false],
    ["Apache-2.0 WITH LLVM-exception", true],
    ["MIT+", true],
  ] as const)("%s → %p", (expression, allowed) => {
    expect(expressionAllowed(expression, ALLOWED)).toBe(allowed);
  });

  test.each(["", "MIT OR", "(MIT", "MIT)", "AND MIT"])("%p cannot be read and throws", (expression) => {
    expect(() => expressionAllowed(expression, ALLOWED)).toThrow(/cannot read license expression/);
  });
});

describe("the license check", () => {
  const pkg = (name: string, license: string | undefined): BundledPackage => ({
    name,
    version: "1.0.0",
    license,
    dir: `node_modules/${name}`,
    purl: npmPurl(name, "1.0.0"),
    dependsOn: [],
  });
  const allowlist = { licenses: { MIT: "permissive" } };

  test("refuses a copyleft package, one without a license and one whose expression is garbage, and names them", () => {
    const verdicts = checkLicenses([pkg("fine", "MIT"), pkg("copyleft", "GPL-3.0-only"), pkg("bare", undefined), pkg("odd", "MIT OR (")], allowlist);
    expect(verdicts.map((v) => v.allowed)).toEqual([true, false, false, false]);
    const report = licenseReport(verdicts);
    expect(report).toMatch(/REFUSED\s+copyleft@1\.0\.0\s+GPL-3\.0-only\s+— GPL-3\.0-only is not on the allowlist/);
    expect(report).toMatch(/REFUSED\s+bare@1\.0\.0\s+\(none\)\s+— no license/);
    expect(report).toContain("3 of 4 bundled packages have a license not on the allowlist");
  });

  test("the repository's allowlist gives a reason for every license", () => {
    const list = readAllowlist(join(ROOT, "packaging", "license-allowlist.json"));
    expect(Object.keys(list.licenses).length).toBeGreaterThan(0);
    const dir = mkdtempSync(join(tmpdir(), "msg-allowlist-"));
    try {
      writeFileSync(join(dir, "a.json"), JSON.stringify({ licenses: { MIT: "" } }));
      expect(() => readAllowlist(join(dir, "a.json"))).toThrow(/"MIT" needs a reason/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("package directories and purls", () => {
  test.each([
    ["node_modules/zod/v4/core/index.js", "node_modules/zod"],
    ["node_modules/@scalar/api-reference/dist/x.js", "node_modules/@scalar/api-reference"],
    ["node_modules/pino/node_modules/@s/b/lib/x.js", "node_modules/pino/node_modules/@s/b"],
    ["src/app.ts", undefined],
  ])("%s → %p", (input, dir) => {
    expect(packageDirOf(input)).toBe(dir);
  });

  test("a scoped name's @ is percent-encoded", () => {
    expect(npmPurl("@electric-sql/pglite", "0.5.16")).toBe("pkg:npm/%40electric-sql/pglite@0.5.16");
  });
});

describe("a synthetic tree: nested copies, hashes, patches", () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "msg-sbom-"));
    const write = (path: string, value: unknown) => {
      mkdirSync(join(root, path, ".."), { recursive: true });
      writeFileSync(join(root, path), typeof value === "string" ? value : JSON.stringify(value));
    };
    write("package.json", { name: "app", version: "1.0.0", dependencies: { a: "1" }, patchedDependencies: { "a@1.0.0": "patches/a@1.0.0.patch" } });
    write("node_modules/a/package.json", { name: "a", version: "1.0.0", license: "MIT", dependencies: { b: "2", c: "1" } });
    write("node_modules/b/package.json", { name: "b", version: "1.0.0", license: "ISC" });
    write("node_modules/a/node_modules/b/package.json", { name: "b", version: "2.0.0", licenses: [{ type: "MIT" }, { type: "Apache-2.0" }] });
    write("node_modules/c/package.json", { name: "c", version: "1.0.0", license: "MIT" });
    // bun.lock is JSONC: trailing commas are part of the format.
    write("bun.lock", `{ "lockfileVersion": 1, "packages": { "a": ["a@1.0.0", "", {}, "sha512-${Buffer.from("hash-of-a").toString("base64")}",], }, }`);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  test("lists what the metafile names, resolves a dependency to its nested copy, and records hash and patch", () => {
    const metafile: Metafile = { inputs: { "src/main.ts": {}, "node_modules/a/index.js": {}, "node_modules/a/node_modules/b/index.js": {} } };
    const packages = bundledPackages(root, metafile);
    expect(packages.map((p) => `${p.name}@${p.version}`)).toEqual(["a@1.0.0", "b@2.0.0"]);
    const [a, b] = packages as [BundledPackage, BundledPackage];
    // c is a declared dependency but was not bundled, and the hoisted b@1 is not the copy a imports.
    expect(a.dependsOn).toEqual(["pkg:npm/b@2.0.0"]);
    expect(a.sha512).toBe(Buffer.from("hash-of-a").toString("hex"));
    expect(a.patch).toBe("patches/a@1.0.0.patch");
    expect(b.license).toBe("(MIT AND Apache-2.0)");
    expect(b.sha512).toBeUndefined();
  });
});

describe("the SBOM of the real binary", () => {
  let packages: BundledPackage[];
  let bom: Record<string, any>;
  beforeAll(() => {
    const out = mkdtempSync(join(tmpdir(), "msg-sbom-build-"));
    try {
      const meta = join(out, "meta.json");
      const proc = Bun.spawnSync(["bun", "build", "--target=bun", "cli/main.ts", "--outdir", out, `--metafile=${meta}`], { cwd: ROOT, stderr: "pipe" });
      if (proc.exitCode !== 0) throw new Error(`bun build failed: ${proc.stderr.toString()}`);
      packages = bundledPackages(ROOT, JSON.parse(readFileSync(meta, "utf8")) as Metafile);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    bom = cycloneDx({ name: pkg.name, version: pkg.version, bunVersion: Bun.version, directDependencies: Object.keys(pkg.dependencies), timestamp: "2026-01-01T00:00:00Z" }, packages);
  });

  test("names the runtime dependencies and none of the development tools", () => {
    const names = new Set(packages.map((p) => p.name));
    for (const name of ["elysia", "zod", "postgres", "@electric-sql/pglite", "pino", "prom-client", "commander"]) expect(names).toContain(name);
    for (const name of ["typescript", "drizzle-kit", "smtp-server", "@types/bun"]) expect(names).not.toContain(name);
  });

  test("every bundled license is on the repository's allowlist (the build's policy)", () => {
    const verdicts = checkLicenses(packages, readAllowlist(join(ROOT, "packaging", "license-allowlist.json")));
    expect(verdicts.filter((v) => !v.allowed).map((v) => `${v.pkg.name}: ${v.reason}`)).toEqual([]);
  });

  test("is a CycloneDX 1.6 document whose dependency graph refers only to its own components", () => {
    expect(bom.bomFormat).toBe("CycloneDX");
    expect(bom.specVersion).toBe("1.6");
    expect(bom.serialNumber).toMatch(/^urn:uuid:[0-9a-f-]{36}$/);
    const refs = new Set<string>([bom.metadata.component["bom-ref"], ...bom.components.map((c: any) => c["bom-ref"])]);
    expect(refs.size).toBe(bom.components.length + 1);
    for (const d of bom.dependencies) {
      expect(refs).toContain(d.ref);
      for (const on of d.dependsOn) expect(refs).toContain(on);
    }
    const elysia = bom.components.find((c: any) => c.name === "elysia");
    expect(elysia.purl).toMatch(/^pkg:npm\/elysia@\d+\.\d+\.\d+$/);
    expect(elysia.hashes[0]).toEqual({ alg: "SHA-512", content: expect.stringMatching(/^[0-9a-f]{128}$/) });
    expect(elysia.pedigree.patches[0].diff.url).toMatch(/^patches\/elysia@/);
    expect(bom.components.find((c: any) => c.name === "bun").version).toBe(Bun.version);
  });
});
