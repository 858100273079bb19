import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { processEnv } from "../../src/config/index.ts";
import { RUNTIME_MAX_REQUEST_BODY_SIZE } from "../../src/server.ts";
import { afterResponse, buildTestApp, type TestApp } from "../helpers/app.ts";
import { signatureAttacks } from "../helpers/hostile-requests.ts";
import { countRows, metricValue, UNLIMITED } from "../helpers/messaging.ts";

// A seeded storm of forged, stale, malformed and oversized X-Messaging-Signature headers (the hostile-input
// generator's signature maker) against a listening app with webhook secrets: every one is a 401 envelope and
// nothing is stored. Replay a failure with HOSTILE_SEED=<the printed seed>.
const SEED = Number(processEnv().HOSTILE_SEED ?? 20261129);
const COUNT = 400;
const cases = signatureAttacks(SEED, COUNT);

let t: TestApp;
let base: string;
beforeAll(async () => {
  t = await buildTestApp({ config: { ...UNLIMITED, webhookSecrets: ["whsec-storm-3a9f0c"] } });
  t.app.listen({ port: 0, hostname: "127.0.0.1", maxRequestBodySize: RUNTIME_MAX_REQUEST_BODY_SIZE });
  base = `http://127.0.0.1:${t.app.server!.port}`;
});
afterAll(async () => {
  await t.app.stop(true);
  await t.close();
});

describe(`signature storm (seed ${SEED})`, () => {
  test(`all ${COUNT} forged signatures are answered 401 unauthorized in the envelope, nothing stored`, async () => {
    const wrong: string[] = [];
    for (const c of cases) {
      const res = await fetch(base + c.path, { method: c.method, headers: c.headers, body: c.body });
      const body = (await res.json().catch(() => undefined)) as { code?: string; request_id?: string } | undefined;
      if (res.status !== 401 || body?.code !== "unauthorized" || body.request_id !== res.headers.get("x-request-id")) {
        wrong.push(`${c.name}: ${res.status} ${JSON.stringify(body)?.slice(0, 120)}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(await countRows(t.database, "messages")).toBe(0);
    await afterResponse();
    const metrics = await t.metrics.registry.metrics();
    const counted = ["missing", "malformed", "stale", "mismatch"].reduce(
      (sum, reason) => sum + metricValue(metrics, "messaging_webhook_signature_failures_total", { reason }),
      0,
    );
    expect(counted).toBe(COUNT);
  }, 60_000);

  test("the storm tries every kind of forgery", () => {
    const kinds = new Set(cases.map((c) => c.name.split(" on ")[0]));
    expect(kinds.size).toBe(12);
  });
});
