// The older messaging-service's HTTP cases (shared/peer/tests.json beside the repository, read at run time)
// against the compiled dist/messaging on both databases, authentication off as that service had none. The cases
// build on each other (they list what earlier ones sent, conversation 1 is the first one made), so each database
// is fresh and the cases run in file order.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate, createMigratedTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { jqMissing, loadPeerCases, PEER_CASES_PATH, playPeerCase } from "../helpers/peer-cases.ts";

const cases = loadPeerCases();

if (!cases) {
  const reason = `${PEER_CASES_PATH} is absent (the repository is run without shared/ beside it)`;
  console.warn(`skipping the older service's HTTP cases: ${reason}`);
  test.skip(`the older service's HTTP cases: skipped, ${reason}`, () => {});
} else {
  beforeAll(ensureBinary, 180_000);

  test("jq is on PATH to evaluate the cases' assertions", () => {
    expect(jqMissing()).toBeUndefined();
  });

  describe.each(["postgres", "embedded"] as const)("the older service's HTTP cases on %s", (kind) => {
    let dir: string;
    let pg: TestDatabase | undefined;
    let server: ServeProcess;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), "msg-test-peer-"));
      const env: Record<string, string> = { MESSAGING_AUTH: "off" };
      const args: string[] = [];
      if (kind === "postgres") {
        pg = await createMigratedTestDatabase();
        env.DATABASE_URL = pg.url;
        args.push("--migrate");
      } else {
        await copyEmbeddedTemplate(join(dir, "messaging-data"), { migrated: true });
      }
      server = await startServe({ cwd: dir, env, args });
    }, 120_000);
    afterAll(async () => {
      await server?.stop().catch(() => {});
      await pg?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    for (const [index, c] of cases.entries()) {
      test(`[${index + 1}] ${c.name}`, async () => {
        const outcome = await playPeerCase(server.url, c);
        expect(outcome.report).toBe("passed");
      });
    }
  });
}
