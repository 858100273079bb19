// How often `serve`'s credential store looks for changes (credentials-wiring.ts). On PostgreSQL other machines
// write credentials (`messaging creds`), so it polls every couple of seconds; on the embedded database only this
// process can write them and its own writers reload the store at once, so an idle server does not read the table
// every 2 s (issue 19: an idle embedded `serve` costs next to nothing).
import { afterEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { loadConfig } from "../../src/config/index.ts";
import { startCredentials, type RunningCredentials } from "../../src/credentials-wiring.ts";
import type { DatabaseHandle } from "../../src/db/client.ts";
import type { SqlRunner } from "../../src/db/runner.ts";
import { buildTestApp, type TestApp } from "../helpers/app.ts";
import { silent } from "../modules/scheduling/workers.ts";

const READS_CREDENTIALS = /FROM provider_credentials/;

/** The handle with every statement of its runner counted when it reads the credentials table. */
function counted(database: DatabaseHandle): { database: DatabaseHandle; reads(): number } {
  let reads = 0;
  const wrap = (inner: SqlRunner): SqlRunner => ({
    query: (text, params) => {
      if (READS_CREDENTIALS.test(text)) reads += 1;
      return inner.query(text, params);
    },
    transaction: (fn) => inner.transaction((tx) => fn(wrap(tx))),
  });
  return { database: { ...database, sql: wrap(database.sql) }, reads: () => reads };
}

const config = loadConfig({ env: { LOG_LEVEL: "silent", MESSAGING_MASTER_KEYS: `k1:${randomBytes(32).toString("base64")}` }, flags: {} });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("the credential store's poll", () => {
  let t: TestApp | undefined;
  let running: RunningCredentials | undefined;
  afterEach(async () => {
    await running?.stop();
    await t?.close();
    running = t = undefined;
  });

  test("on the embedded database it does not read the table while idle, and a change in this process reloads it", async () => {
    t = await buildTestApp({ database: "embedded" });
    const handle = counted(t.database);
    running = await startCredentials(config, handle.database, t.metrics, silent);
    const afterLoad = handle.reads();
    expect(afterLoad).toBeGreaterThanOrEqual(1);
    await sleep(2500);
    expect(handle.reads()).toBe(afterLoad);
    await running.store.poll(); // what an in-process writer calls (`credentialsChanged`)
    expect(handle.reads()).toBe(afterLoad + 1);
  }, 30_000);

  test("on PostgreSQL it keeps polling, for changes made by other machines", async () => {
    t = await buildTestApp({ database: "postgres" });
    const handle = counted(t.database);
    running = await startCredentials(config, handle.database, t.metrics, silent);
    const afterLoad = handle.reads();
    await sleep(2500);
    expect(handle.reads()).toBeGreaterThan(afterLoad);
  }, 30_000);
});
