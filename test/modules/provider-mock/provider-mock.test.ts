import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, request, type TestApp } from "../../helpers/app.ts";
import { countJobs, countRows, email, get, phone, post, TS, UNLIMITED } from "../../helpers/messaging.ts";

// One database; the app starts from non-zero API_PROVIDER_* defaults so "defaults come from config" is visible.
const DEFAULTS = { providerTimeoutPct: 5, providerErrorPct: 7, providerRatelimitPct: 3, providerSeed: 42 };
let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: { ...UNLIMITED, ...DEFAULTS } });
});
afterAll(() => t.close());

const put = (app: TestApp["app"], body: unknown) => request(app, "PUT", "/api/provider/mock/config", { body });
/** A config of the four original fields as GET answers it: the newer fields at their defaults. */
const answered = (config: object) => ({ ...config, latency_ms: 0, delivery_report_pct: 0, breaker_open_secs: null });

describe("POST /api/provider/mock/inbound", () => {
  test.each([
    ["sms", () => ({ from: phone(), to: phone() }), {}],
    ["mms", () => ({ from: phone(), to: phone() }), { attachments: ["https://media.example.com/x.gif"] }],
    ["email", () => ({ from: email(), to: email() }), {}],
  ])("channel %s is stored as an inbound message with status received", async (channel, addresses, extra) => {
    const body = { channel, ...addresses(), body: `mock ${channel}`, attachments: null, timestamp: TS, ...extra };
    const res = await post(t.app, "/api/provider/mock/inbound", body);
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ status: "accepted", id: expect.stringMatching(/^\d+$/), conversation_id: expect.stringMatching(/^\d+$/) });
    const msg = await get(t.app, `/api/messages/${res.json.id}`);
    expect(msg.json.direction).toBe("inbound");
    expect(msg.json.status).toBe("received");
    expect(msg.json.channel).toBe(channel);
    expect(msg.json.body).toBe(`mock ${channel}`);
    expect(await countJobs(t.database, "message_id = $1", [res.json.id])).toBe(0);
  });

  test("channel is read case-insensitively", async () => {
    const res = await post(t.app, "/api/provider/mock/inbound", { channel: "SMS", from: phone(), to: phone(), body: "x", timestamp: TS });
    expect(res.status).toBe(202);
    expect((await get(t.app, `/api/messages/${res.json.id}`)).json.channel).toBe("sms");
  });

  test("without a provider id one is generated, so two injections are two messages", async () => {
    const body = { channel: "sms", from: phone(), to: phone(), body: "same", attachments: [], timestamp: TS };
    const a = await post(t.app, "/api/provider/mock/inbound", body);
    const b = await post(t.app, "/api/provider/mock/inbound", body);
    expect(b.json.id).not.toBe(a.json.id);
    const rows = await t.database.sql.query<{ provider_message_id: string | null }>(
      "SELECT provider_message_id FROM messages WHERE id IN ($1, $2)",
      [a.json.id, b.json.id],
    );
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row.provider_message_id).toBeString();
    expect(rows[0]!.provider_message_id).not.toBe(rows[1]!.provider_message_id);
  });

  test("with a provider id a repeat is deduplicated like a webhook, and shares ids with the webhook route", async () => {
    const body = { channel: "sms", from: phone(), to: phone(), body: "once", timestamp: TS, messaging_provider_id: `mock-${crypto.randomUUID()}` };
    const a = await post(t.app, "/api/provider/mock/inbound", body);
    const b = await post(t.app, "/api/provider/mock/inbound", body);
    expect(b.json.id).toBe(a.json.id);
    const { channel: _channel, ...webhook } = body;
    const c = await post(t.app, "/api/webhooks/sms", { ...webhook, type: "sms" });
    expect(c.json.id).toBe(a.json.id);
  });

  test("an email injection uses xillio_id as its provider id", async () => {
    const xillio = `x-${crypto.randomUUID()}`;
    const body = { channel: "email", from: email(), to: email(), body: "<b>hi</b>", timestamp: TS, xillio_id: xillio };
    const res = await post(t.app, "/api/provider/mock/inbound", body);
    expect(await countRows(t.database, "messages", "provider_message_id = $1 AND id = $2", [xillio, res.json.id])).toBe(1);
  });

  test.each([
    ["an unknown channel", { channel: "fax" }, "channel"],
    ["a missing channel", { channel: undefined }, "channel"],
    ["an email address on sms", { from: "a@example.com" }, "from"],
    ["mms without attachments", { channel: "mms" }, "attachments"],
    ["a bad timestamp", { timestamp: "yesterday" }, "timestamp"],
  ])("%s is a 400 naming the field", async (_case, override, field) => {
    const body = { channel: "sms", from: phone(), to: phone(), body: "x", timestamp: TS, ...override };
    const res = await post(t.app, "/api/provider/mock/inbound", body);
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    expect(res.json.details.map((d: { path: string }) => d.path)).toContain(field);
  });
});

describe("GET/PUT /api/provider/mock/config", () => {
  test("GET answers the configured API_PROVIDER_* defaults until a config is PUT", async () => {
    const res = await get(t.app, "/api/provider/mock/config");
    expect(res.status).toBe(200);
    expect(res.json).toEqual(answered({ timeout_pct: 5, error_pct: 7, ratelimit_pct: 3, seed: 42 }));
  });

  test("another instance without a configured seed answers its own defaults, with seed null, until a PUT", async () => {
    const other = await buildTestApp({ database: t.database, config: { providerErrorPct: 10 } });
    expect((await get(other.app, "/api/provider/mock/config")).json).toEqual(answered({ timeout_pct: 0, error_pct: 10, ratelimit_pct: 0, seed: null }));
  });

  test("PUT replaces the config, answers it, and GET returns it", async () => {
    const config = { timeout_pct: 10, error_pct: 20, ratelimit_pct: 30, seed: 7, latency_ms: 25, delivery_report_pct: 40, breaker_open_secs: 2 };
    const res = await put(t.app, config);
    expect(res.status).toBe(200);
    expect(res.json).toEqual(config);
    expect((await get(t.app, "/api/provider/mock/config")).json).toEqual(config);
  });

  test("a PUT of only the four original fields works, and answers and stores the newer ones at 0", async () => {
    await put(t.app, { timeout_pct: 1, error_pct: 1, ratelimit_pct: 1, seed: 1, latency_ms: 500, delivery_report_pct: 50, breaker_open_secs: 5 });
    const config = { timeout_pct: 10, error_pct: 20, ratelimit_pct: 30, seed: 7 };
    const res = await put(t.app, config);
    expect(res.status).toBe(200);
    expect(res.json).toEqual(answered(config));
    expect((await get(t.app, "/api/provider/mock/config")).json).toEqual(answered(config));
  });

  test("a config stored before the newer fields existed is read with them at 0", async () => {
    const old = { timeout_pct: 4, error_pct: 3, ratelimit_pct: 2, seed: 1 };
    await t.database.sql.query("UPDATE runtime_settings SET value = $1::jsonb WHERE name = 'provider.mock'", [JSON.stringify(old)]);
    expect((await get(t.app, "/api/provider/mock/config")).json).toEqual(answered(old));
  });

  test("the newer fields accept their bounds", async () => {
    for (const breaker_open_secs of [1, 3600, null]) {
      const config = { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null, latency_ms: 60000, delivery_report_pct: 100, breaker_open_secs };
      expect((await put(t.app, config)).json).toEqual(config);
    }
  });

  test("a PUT with seed null and a sum of exactly 100 is accepted", async () => {
    const config = { timeout_pct: 50, error_pct: 25, ratelimit_pct: 25, seed: null };
    expect((await put(t.app, config)).status).toBe(200);
    expect((await get(t.app, "/api/provider/mock/config")).json).toEqual(answered(config));
  });

  test("the stored config is durable: a new app instance on the same database (other defaults) reads it", async () => {
    const config = { timeout_pct: 1, error_pct: 2, ratelimit_pct: 3, seed: 123 };
    await put(t.app, config);
    const second = await buildTestApp({ database: t.database, config: { providerErrorPct: 99 } });
    expect((await get(second.app, "/api/provider/mock/config")).json).toEqual(answered(config));
    const changed = { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null };
    expect((await put(second.app, changed)).status).toBe(200);
    expect((await get(t.app, "/api/provider/mock/config")).json).toEqual(answered(changed));
    expect(await countRows(t.database, "runtime_settings")).toBe(1);
  });

  test.each([
    ["a percentage above 100", { error_pct: 101 }, "error_pct"],
    ["a negative percentage", { timeout_pct: -1 }, "timeout_pct"],
    ["a fractional percentage", { ratelimit_pct: 1.5 }, "ratelimit_pct"],
    ["a percentage as a string", { error_pct: "10" }, "error_pct"],
    ["a percentage as null", { timeout_pct: null }, "timeout_pct"],
    ["a missing error_pct", { error_pct: undefined }, "error_pct"],
    ["a missing seed", { seed: undefined }, "seed"],
    ["a fractional seed", { seed: 1.5 }, "seed"],
    ["a negative seed", { seed: -1 }, "seed"],
    ["a sum above 100", { timeout_pct: 40, error_pct: 40, ratelimit_pct: 21 }, "root"],
    ["a negative latency", { latency_ms: -1 }, "latency_ms"],
    ["a latency above a minute", { latency_ms: 60001 }, "latency_ms"],
    ["a fractional latency", { latency_ms: 2.5 }, "latency_ms"],
    ["a latency as a string", { latency_ms: "10" }, "latency_ms"],
    ["a latency as null", { latency_ms: null }, "latency_ms"],
    ["a delivery report share above 100", { delivery_report_pct: 101 }, "delivery_report_pct"],
    ["a negative delivery report share", { delivery_report_pct: -1 }, "delivery_report_pct"],
    ["a delivery report share as null", { delivery_report_pct: null }, "delivery_report_pct"],
    ["a breaker cool-down of 0", { breaker_open_secs: 0 }, "breaker_open_secs"],
    ["a breaker cool-down above an hour", { breaker_open_secs: 3601 }, "breaker_open_secs"],
    ["a fractional breaker cool-down", { breaker_open_secs: 1.5 }, "breaker_open_secs"],
  ])("%s is a 400 validation_failed and changes nothing", async (_case, override, field) => {
    const before = (await get(t.app, "/api/provider/mock/config")).json;
    const res = await put(t.app, { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null, ...override });
    expect(res.status).toBe(400);
    expect(res.json.code).toBe("validation_failed");
    expect(res.json.details.map((d: { path: string }) => d.path)).toContain(field);
    expect((await get(t.app, "/api/provider/mock/config")).json).toEqual(before);
  });
});
