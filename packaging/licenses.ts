/**
 * The license policy of the binary: every bundled package's SPDX expression must be satisfiable with the
 * licenses in packaging/license-allowlist.json (`A OR B` needs one of them, `A AND B` both). A package with no
 * license, or one whose expression cannot be read, fails: an unknown license is not an allowed one.
 */
import { readFileSync } from "node:fs";
import type { BundledPackage } from "./sbom.ts";

export interface LicenseAllowlist {
  /** SPDX id → why it is allowed. */
  licenses: Record<string, string>;
}

export interface LicenseVerdict {
  pkg: BundledPackage;
  allowed: boolean;
  /** What was wrong, for a refused package. */
  reason?: string;
}

export function readAllowlist(path: string): LicenseAllowlist {
  const parsed = JSON.parse(readFileSync(path, "utf8")) as LicenseAllowlist;
  if (!parsed.licenses || typeof parsed.licenses !== "object") throw new Error(`${path}: expected a "licenses" object of SPDX id → reason`);
  for (const [id, reason] of Object.entries(parsed.licenses)) {
    if (typeof reason !== "string" || reason.trim() === "") throw new Error(`${path}: "${id}" needs a reason`);
  }
  return parsed;
}

/**
 * Whether an SPDX license expression is satisfied by the allowed ids: a small recursive-descent reading of
 * `id`, `id+`, `id WITH exception`, `AND`, `OR` and parentheses (AND binds tighter, as the SPDX spec says).
 * Throws on anything else.
 */
export function expressionAllowed(expression: string, allowed: ReadonlySet<string>): boolean {
  const tokens = expression.match(/\(|\)|[^\s()]+/g) ?? [];
  let at = 0;
  const peek = () => tokens[at];
  const fail = (what: string): never => {
    throw new Error(`cannot read license expression "${expression}": ${what}`);
  };
  const term = (): boolean => {
    const token = tokens[at++];
    if (token === undefined) return fail("it ends too early");
    if (token === "(") {
      const value = or();
      if (tokens[at++] !== ")") fail("a parenthesis is not closed");
      return value;
    }
    if (/^(AND|OR|WITH|\))$/i.test(token)) return fail(`unexpected "${token}"`);
    // An exception only adds permissions, so `X WITH e` is as acceptable as X.
    if (peek()?.toUpperCase() === "WITH") at += 2;
    return allowed.has(token.replace(/\+$/, ""));
  };
  const and = (): boolean => {
    let value = term();
    while (peek()?.toUpperCase() === "AND") {
      at++;
      value = term() && value;
    }
    return value;
  };
  const or = (): boolean => {
    let value = and();
    while (peek()?.toUpperCase() === "OR") {
      at++;
      value = and() || value;
    }
    return value;
  };
  const value = or();
  if (at !== tokens.length) fail(`unexpected "${tokens[at]}"`);
  return value;
}

/** The verdict for each bundled package, in the order given. */
export function checkLicenses(packages: BundledPackage[], allowlist: LicenseAllowlist): LicenseVerdict[] {
  const allowed = new Set(Object.keys(allowlist.licenses));
  return packages.map((pkg) => {
    if (!pkg.license) return { pkg, allowed: false, reason: "no license in its package.json" };
    try {
      return expressionAllowed(pkg.license, allowed) ? { pkg, allowed: true } : { pkg, allowed: false, reason: `${pkg.license} is not on the allowlist` };
    } catch (err) {
      return { pkg, allowed: false, reason: (err as Error).message };
    }
  });
}

/** The human report written beside the binaries: one line per package, then the verdict. */
export function licenseReport(verdicts: LicenseVerdict[]): string {
  const width = Math.max(...verdicts.map((v) => `${v.pkg.name}@${v.pkg.version}`.length), 10);
  const lines = verdicts.map((v) => {
    const id = `${v.pkg.name}@${v.pkg.version}`.padEnd(width);
    return `${v.allowed ? "ok     " : "REFUSED"}  ${id}  ${v.pkg.license ?? "(none)"}${v.reason ? `  — ${v.reason}` : ""}`;
  });
  const refused = verdicts.filter((v) => !v.allowed).length;
  lines.push("", refused === 0 ? `${verdicts.length} bundled packages, all licenses allowed` : `${refused} of ${verdicts.length} bundled packages have a license not on the allowlist`);
  return `${lines.join("\n")}\n`;
}
