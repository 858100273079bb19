import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { type DatabaseHandle, openPostgres } from "../../../src/db/client.ts";
import { buildTestApp, request, type TestApp } from "../../helpers/app.ts";
import { createMigratedTestDatabase, type TestDatabase } from "../../helpers/database.ts";
import { type FaultProxy, startFaultProxy } from "../../helpers/fault-proxy.ts";
import { concurrently, countRows, emailWebhook, metricValue, smsSend, UNLIMITED } from "../../helpers/messaging.ts";

/*
 * "A write's answer matches the database" (issue 6, defect 3). The app talks to PostgreSQL through a proxy
 * that cuts its connection at exact points of a write; a second, direct connection checks what was stored.
 * - cut after commit: the write committed and the client never heard → the normal 202 with the stored ids;
 * - cut before commit: nothing committed → 503 service_unavailable, and a retry stores the message once;
 * - cut, and no fresh connection can be made in time → 503 outcome_unknown.
 */
const INSERT = /insert into messages/i;
const BATCH = /json_to_recordset/i;

let pg: TestDatabase;
let proxy: FaultProxy;
let direct: DatabaseHandle;
let viaProxy: DatabaseHandle;
let t: TestApp;

beforeAll(async () => {
  pg = await createMigratedTestDatabase();
  direct = openPostgres(pg.url, 2);
  proxy = await startFaultProxy();
  viaProxy = openPostgres(proxy.url(pg.url), 4, { writeOutcomeMs: 1500 });
  t = await buildTestApp({ database: viaProxy, config: UNLIMITED });
  // Open every pooled connection and prepare the write statements on it before any cut is armed: the cuts
  // are about a write's own statements, not a connection's start-up.
  await concurrently(8, (i) =>
    request(t.app, "POST", i % 2 ? "/api/messages/sms" : "/api/webhooks/email", {
      body: i % 2 ? smsSend() : emailWebhook(),
      headers: i % 4 === 1 ? { "idempotency-key": `warm-${i}` } : {},
    }),
  );
});
afterEach(() => proxy.heal());
afterAll(async () => {
  await t.close();
  await viaProxy.close().catch(() => {});
  await direct.close();
  await proxy.close();
  await pg.drop();
});

const stored = (body: string) => countRows(direct, "messages", "body = $1", [body]);
const outcomes = async (outcome: string) => metricValue(await t.metrics.registry.metrics(), "messaging_write_outcome_checks_total", { outcome });
const unavailable = async () => metricValue(await t.metrics.registry.metrics(), "messaging_database_unavailable_total");
const storedIds = async (id: string) =>
  (await direct.sql.query<{ conversation_id: string; body: string }>("SELECT conversation_id::text, body FROM messages WHERE id = $1", [id]))[0];

describe("a connection cut after the write committed", () => {
  test("a lone send answers 202 with the ids that were stored, once", async () => {
    const body = smsSend({ body: "committed-lone" });
    const cut = proxy.cutAfterCommit({ match: INSERT });
    const res = await request(t.app, "POST", "/api/messages/sms", { body });
    expect((await cut)?.committed).toBe(true);
    expect(res.status).toBe(202);
    expect(await storedIds(res.json.id)).toEqual({ conversation_id: res.json.conversation_id, body: "committed-lone" });
    expect(await stored("committed-lone")).toBe(1);
    expect(await outcomes("committed")).toBeGreaterThanOrEqual(1);
  });

  test("a group commit answers every send of the batch 202 with its own ids, and stores none twice", async () => {
    const cut = proxy.cutAfterCommit({ match: BATCH });
    // The first send goes alone; the rest arrive while it is written and share the next statement.
    const responses = await concurrently(24, (i) => request(t.app, "POST", "/api/messages/sms", { body: smsSend({ body: `committed-batch-${i}` }) }));
    expect((await cut)?.committed).toBe(true);
    expect(responses.map((r) => r.status)).toEqual(Array(24).fill(202));
    expect(new Set(responses.map((r) => r.json.id)).size).toBe(24);
    for (const [i, r] of responses.entries()) expect((await storedIds(r.json.id))?.body).toBe(`committed-batch-${i}`);
    expect(await countRows(direct, "messages", "body LIKE 'committed-batch-%'")).toBe(24);
  });

  test("a group commit with sends refused for an opt-out answers them 422 and the others 202, from the receipt", async () => {
    const us = "+12015550777";
    const blocked = "+12015550778";
    await direct.sql.query("INSERT INTO opt_outs (from_addr, to_addr, source, reason) VALUES ($1, $2, 'provider', 'twilio 21610')", [us, blocked]);
    const cut = proxy.cutAfterCommit({ match: BATCH });
    const responses = await concurrently(24, (i) =>
      request(t.app, "POST", "/api/messages/sms", { body: smsSend({ from: us, to: i % 3 === 0 ? blocked : smsSend().to, body: `optout-batch-${i}` }) }),
    );
    expect((await cut)?.committed).toBe(true);
    expect(responses.map((r) => r.status)).toEqual(Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? 422 : 202)));
    for (const [i, r] of responses.entries()) {
      if (i % 3 === 0) expect(r.json.code).toBe("recipient_opted_out");
      else expect((await storedIds(r.json.id))?.body).toBe(`optout-batch-${i}`);
    }
    expect(await countRows(direct, "messages", "body LIKE 'optout-batch-%'")).toBe(16);
  });

  test("a keyed send answers 202, and its retry is a replay of that answer", async () => {
    const body = smsSend({ body: "committed-keyed" });
    const cut = proxy.cutAfterCommit({ match: INSERT });
    const first = await request(t.app, "POST", "/api/messages/sms", { body, headers: { "idempotency-key": "cut-commit-1" } });
    expect((await cut)?.committed).toBe(true);
    expect(first.status).toBe(202);
    const retry = await request(t.app, "POST", "/api/messages/sms", { body, headers: { "idempotency-key": "cut-commit-1" } });
    expect(retry.status).toBe(202);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.json).toEqual(first.json);
    expect(await stored("committed-keyed")).toBe(1);
  });

  test("a webhook answers 202, and the provider's retry is answered with the same id", async () => {
    const body = emailWebhook({ body: "committed-webhook" });
    const cut = proxy.cutAfterCommit({ match: INSERT });
    const first = await request(t.app, "POST", "/api/webhooks/email", { body });
    expect((await cut)?.committed).toBe(true);
    expect(first.status).toBe(202);
    const retry = await request(t.app, "POST", "/api/webhooks/email", { body });
    expect(retry.status).toBe(202);
    expect(retry.json).toEqual({ ...first.json, duplicate: true });
    expect(await stored("committed-webhook")).toBe(1);
  });
});

describe("a connection cut before the write committed", () => {
  test("a lone send answers 503 service_unavailable and stored nothing", async () => {
    const cut = proxy.cutAfterQuerySent({ match: INSERT, withholdSync: true });
    const res = await request(t.app, "POST", "/api/messages/sms", { body: smsSend({ body: "rolled-back-lone" }) });
    expect(await cut).not.toBeNull();
    expect(res.status).toBe(503);
    expect(res.json.code).toBe("service_unavailable");
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(await stored("rolled-back-lone")).toBe(0);
    expect(await outcomes("rolled_back")).toBeGreaterThanOrEqual(1);
  });

  test("a keyed send answers 503 and does not consume its key: the retry stores the message once", async () => {
    const body = smsSend({ body: "rolled-back-keyed" });
    // Inside the keyed transaction: the insert runs, then the connection dies before COMMIT.
    const cut = proxy.cutAfterQuerySent({ match: INSERT });
    const first = await request(t.app, "POST", "/api/messages/sms", { body, headers: { "idempotency-key": "cut-before-1" } });
    expect(await cut).not.toBeNull();
    expect(first.status).toBe(503);
    expect(first.json.code).toBe("service_unavailable");
    const retry = await request(t.app, "POST", "/api/messages/sms", { body, headers: { "idempotency-key": "cut-before-1" } });
    expect(retry.status).toBe(202);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
    expect(await stored("rolled-back-keyed")).toBe(1);
  });

  test("a webhook answers 503 and the provider's retry stores it once", async () => {
    const body = emailWebhook({ body: "rolled-back-webhook" });
    const cut = proxy.cutAfterQuerySent({ match: INSERT });
    const first = await request(t.app, "POST", "/api/webhooks/email", { body });
    expect(await cut).not.toBeNull();
    expect(first.status).toBe(503);
    const retry = await request(t.app, "POST", "/api/webhooks/email", { body });
    expect(retry.status).toBe(202);
    expect(retry.json.duplicate).toBeUndefined();
    expect(await stored("rolled-back-webhook")).toBe(1);
  });
});

describe("a connection cut while the database cannot be reached again in time", () => {
  test("a send answers 503 outcome_unknown, telling the client to retry with an Idempotency-Key", async () => {
    const unavailableBefore = await unavailable();
    const cut = proxy.cutAfterQuerySent({ match: INSERT });
    void cut.then(() => proxy.refuse());
    const started = performance.now();
    const res = await request(t.app, "POST", "/api/messages/sms", { body: smsSend({ body: "unknown-lone" }) });
    const elapsed = performance.now() - started;
    expect(res.status).toBe(503);
    expect(res.json).toEqual({ code: "outcome_unknown", message: expect.stringContaining("Idempotency-Key"), request_id: expect.any(String) });
    expect(res.headers.get("retry-after")).toMatch(/^\d+$/);
    // Bounded by MESSAGING_WRITE_OUTCOME_TIMEOUT_MS (1.5 s here), not by the client's patience.
    expect(elapsed).toBeLessThan(5000);
    expect(await outcomes("unknown")).toBe(1);
    // The lost connection behind the answer is still a database failure where an operator looks for one.
    expect(await unavailable()).toBe(unavailableBefore + 1);
  });
});
