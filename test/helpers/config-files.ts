/**
 * Config files for tests, in a temporary directory of the test file's own:
 *
 *   const files = configFiles("msg-test-config-");
 *   afterAll(files.remove);
 *   const path = files.write("toml", 'log_level = "warn"');   // or an object, written as JSON
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function configFiles(prefix: string): {
  dir: string;
  write(ext: "json" | "toml", content: Record<string, unknown> | string): string;
  remove(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  let count = 0;
  return {
    dir,
    write(ext, content) {
      const path = join(dir, `config-${++count}.${ext}`);
      writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
      return path;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
