import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { settingsTable } from "../../src/config/index.ts";

const ROOT = join(import.meta.dir, "..", "..");
const readme = readFileSync(join(ROOT, "README.md"), "utf8");

/** The text of a `## title` section, up to the next `## `. */
function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  expect(start).toBeGreaterThan(-1);
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

describe("README.md", () => {
  test("its configuration table is exactly settingsTable() (regenerate it from src/config/describe.ts when this fails)", () => {
    const match = readme.match(/<!-- settings-table:[^\n]*-->\n([\s\S]*?)\n<!-- \/settings-table -->/);
    expect(match).not.toBeNull();
    expect(match![1]).toBe(settingsTable());
  });

  test("gives exactly two set-up commands: install bun from npm, then run the service / the whole test suite", () => {
    const blocks = [...section("Set up").matchAll(/```sh\n([\s\S]*?)\n```/g)].map((m) => m[1]!);
    expect(blocks).toHaveLength(2);
    for (const block of blocks) {
      expect(block.split("\n")).toHaveLength(1);
      expect(block).toMatch(/^npm install -g bun@\d+\.\d+\.\d+ && bun install --frozen-lockfile && /);
    }
    expect(blocks[0]).toEndWith("&& bun run start");
    expect(blocks[1]).toEndWith("&& bun run test");
  });

  test("installs the bun version that package.json's @types/bun pins and .ci/run installs", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
    const version = readme.match(/npm install -g bun@(\S+) /)![1]!;
    expect(pkg.devDependencies["@types/bun"]).toBe(version);
    expect(readFileSync(join(ROOT, ".ci", "run"), "utf8")).toContain(`BUN_VERSION=${version}`);
  });

  test("its test command type-checks before it builds and tests, so a type error fails it and .ci/run", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts.typecheck).toBe("tsc --noEmit");
    expect(pkg.scripts.test).toStartWith("bun run typecheck && ");
    expect(section("Set up")).toMatch(/type-checks\s+\(`tsc --noEmit`/);
  });

  test(".ci/run runs the README's test command after installing bun", () => {
    const testCommand = [...section("Set up").matchAll(/```sh\n([\s\S]*?)\n```/g)][1]![1]!;
    const afterInstall = testCommand.replace(/^npm install -g bun@\S+ && /, "");
    expect(readFileSync(join(ROOT, ".ci", "run"), "utf8")).toContain(afterInstall);
  });
});
