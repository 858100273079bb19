import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type DatabaseHandle, openPostgres } from "../../../src/db/client.ts";
import { buildTestApp, request, type TestApp } from "../../helpers/app.ts";
import { createMigratedTestDatabase, type TestDatabase } from "../../helpers/database.ts";
import { type FaultProxy, startFaultProxy } from "../../helpers/fault-proxy.ts";
import { concurrently, countRows, metricValue, smsSend, UNLIMITED } from "../../helpers/messaging.ts";

/*
 * Backpressure: unkeyed sends wait for their group commit in a bounded queue. With the database stalled, one
 * batch is in flight and the queue fills; the next send is refused at once with 503 instead of waiting out its
 * client's timeout, and the queued ones are written once the database answers again.
 */
let pg: TestDatabase;
let proxy: FaultProxy;
let direct: DatabaseHandle;
let viaProxy: DatabaseHandle;
let t: TestApp;
const LIMIT = 5;

beforeAll(async () => {
  pg = await createMigratedTestDatabase();
  direct = openPostgres(pg.url, 2);
  proxy = await startFaultProxy();
  // A pool of 4 allows one batch in flight at a time.
  viaProxy = openPostgres(proxy.url(pg.url), 4);
  t = await buildTestApp({ database: viaProxy, config: { ...UNLIMITED, sendQueueLimit: LIMIT, databasePoolSize: 4 } });
  expect((await request(t.app, "POST", "/api/messages/sms", { body: smsSend() })).status).toBe(202);
});
afterAll(async () => {
  await proxy.heal();
  await t.close();
  await viaProxy.close().catch(() => {});
  await direct.close();
  await proxy.close();
  await pg.drop();
});

describe("a full send queue", () => {
  test("refuses the next send at once with 503 and Retry-After; the queued sends are stored once the database answers", async () => {
    proxy.stall();
    const inFlight = request(t.app, "POST", "/api/messages/sms", { body: smsSend({ body: "queue-in-flight" }) });
    await Bun.sleep(50);
    const queued = Array.from({ length: LIMIT }, (_, i) => request(t.app, "POST", "/api/messages/sms", { body: smsSend({ body: `queue-waiting-${i}` }) }));
    await Bun.sleep(50);
    const started = performance.now();
    const refused = await concurrently(3, () => request(t.app, "POST", "/api/messages/sms", { body: smsSend({ body: "queue-refused" }) }));
    expect(performance.now() - started).toBeLessThan(500);
    for (const res of refused) {
      expect(res.status).toBe(503);
      expect(res.json).toEqual({ code: "service_unavailable", message: expect.stringContaining("nothing was stored"), request_id: expect.any(String) });
      expect(res.headers.get("retry-after")).toBe("1");
    }
    const metrics = await t.metrics.registry.metrics();
    expect(metricValue(metrics, "messaging_send_queue_rejected_total")).toBe(3);
    expect(metricValue(metrics, "messaging_send_queue_depth")).toBe(LIMIT);

    await proxy.heal();
    const answered = await Promise.all([inFlight, ...queued]);
    expect(answered.map((r) => r.status)).toEqual(Array(LIMIT + 1).fill(202));
    expect(await countRows(direct, "messages", "body LIKE 'queue-%'")).toBe(LIMIT + 1);
    expect(await countRows(direct, "messages", "body = 'queue-refused'")).toBe(0);
  });
});
