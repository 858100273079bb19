/**
 * A provider's "recipient unsubscribed" answer becomes an opt-out: the Twilio adapter, against the fake Twilio on
 * loopback (test/providers/twilio-fake.ts), answers 21610 for a recipient who texted STOP there; the dispatcher
 * fails the message and records the opt-out in its result write, after which sends to that recipient from that
 * sender are refused with 422 and nothing is queued.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { Writable } from "node:stream";
import { Dispatcher } from "../../src/delivery/dispatcher.ts";
import { recordResults } from "../../src/delivery/jobs.ts";
import { ProviderRegistry } from "../../src/providers/registry.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { createMetrics, type Metrics } from "../../src/observability/metrics.ts";
import { type Provider, recipientOptedOut } from "../../src/providers/provider.ts";
import { TwilioProvider } from "../../src/providers/twilio/adapter.ts";
import { createEgress } from "../../src/security/egress.ts";
import { VERSION } from "../../src/version.ts";
import { buildTestApp, type TestApp } from "../helpers/app.ts";
import { countJobs, countRows, email, emailSend, metricValue, phone, post, smsSend, UNLIMITED } from "../helpers/messaging.ts";
import { FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN, type FakeTwilio, startFakeTwilio } from "../providers/twilio-fake.ts";

const silent = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, done) => done() }) });

/** An email adapter that (wrongly) flags its refusal as an opt-out: an email has no sender number to opt out of. */
const flaggingEmail: Provider = { name: "email-flagging", send: async () => recipientOptedOut("mailbox unsubscribed", 550) };

let fake: FakeTwilio;
beforeAll(async () => {
  fake = await startFakeTwilio();
});
afterAll(() => fake.close());

describe.each(["postgres", "embedded"] as const)("Twilio 21610 on %s", (database) => {
  let t: TestApp;
  let dispatcher: Dispatcher | undefined;
  let metrics: Metrics;
  beforeAll(async () => {
    t = await buildTestApp({ database, config: UNLIMITED });
  });
  afterEach(async () => {
    await dispatcher?.stop(1000);
    dispatcher = undefined;
  });
  afterAll(() => t.close());

  function startDispatcher(): void {
    const twilio = new TwilioProvider("twilio-main", {
      accountSid: FAKE_ACCOUNT_SID,
      credentials: () => ({ username: FAKE_ACCOUNT_SID, password: FAKE_AUTH_TOKEN }),
      baseUrl: fake.baseUrl,
      egress: createEgress({ allowlist: ["127.0.0.1"], allowHttp: true, ports: [fake.port], timeoutMs: 5_000 }),
    });
    const providers = new Map<string, Provider>([
      [twilio.name, twilio],
      [flaggingEmail.name, flaggingEmail],
    ]);
    const registry = new ProviderRegistry(
      {
        routes: { sms: ["twilio-main"], mms: ["twilio-main"], email: ["email-flagging"] },
        providers: [
          { name: "twilio-main", kind: "twilio", timeoutMs: 5_000 },
          { name: "email-flagging", kind: "mock", timeoutMs: 5_000 },
        ],
      },
      (spec) => providers.get(spec.name)!,
    );
    metrics = createMetrics({ version: VERSION });
    dispatcher = new Dispatcher(
      { sql: t.database.sql, registry, metrics, logger: silent },
      {
        workers: 1,
        batchSize: 50,
        pollMs: 20,
        leaseMs: 10_000,
        maxAttempts: 5,
        maxAgeMs: 3_600_000,
        backoff: { baseMs: 20, capMs: 200 },
        breaker: { failureThreshold: 5, openMs: 30_000 },
        sampleMs: 1_000,
      },
    );
    dispatcher.start();
  }

  async function finalStatus(id: string): Promise<{ status: string; status_reason: string | null }> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const [row] = await t.database.sql.query<{ status: string; status_reason: string | null }>(
        "SELECT status, status_reason FROM messages WHERE id = $1",
        [id],
      );
      if (row && (row.status === "sent" || row.status === "failed")) return row;
      if (Date.now() > deadline) throw new Error(`message ${id} is still ${row?.status}`);
      await Bun.sleep(20);
    }
  }

  const optOuts = (from: string) =>
    t.database.sql.query<{ to_addr: string; source: string; reason: string; message_id: string | null }>(
      "SELECT to_addr, source, reason, message_id::text AS message_id FROM opt_outs WHERE from_addr = $1 ORDER BY to_addr",
      [from],
    );

  test("a 21610 fails the message and opts the recipient out of its sender; later sends there are refused", async () => {
    const us = phone();
    const them = phone();
    const other = phone();
    fake.unsubscribed.add(them);
    const blocked = await post(t.app, "/api/messages/sms", smsSend({ from: us, to: them }));
    const fine = await post(t.app, "/api/messages/sms", smsSend({ from: us, to: other }));
    startDispatcher();

    expect(await finalStatus(blocked.json.id)).toEqual({ status: "failed", status_reason: "twilio 21610: Attempt to send to unsubscribed recipient" });
    expect((await finalStatus(fine.json.id)).status).toBe("sent");
    expect(await optOuts(us)).toEqual([
      { to_addr: them, source: "provider", reason: "twilio 21610: Attempt to send to unsubscribed recipient", message_id: blocked.json.id },
    ]);
    expect(metricValue(await metrics.registry.metrics(), "messaging_opt_outs_total", { action: "stop", source: "provider" })).toBe(1);

    const jobs = await countJobs(t.database);
    const refused = await post(t.app, "/api/messages/sms", smsSend({ from: us, to: them }));
    expect(refused.status).toBe(422);
    expect(refused.json.code).toBe("recipient_opted_out");
    expect(await countJobs(t.database)).toBe(jobs);
    expect((await post(t.app, "/api/messages/sms", smsSend({ from: us, to: other }))).status).toBe(202);
  });

  test("two refused messages to one recipient record one opt-out, and an earlier STOP keeps its row", async () => {
    const us = phone();
    const them = phone();
    const texted = phone();
    fake.unsubscribed.add(them);
    fake.unsubscribed.add(texted);
    const ids = [];
    for (let i = 0; i < 2; i++) ids.push((await post(t.app, "/api/messages/sms", smsSend({ from: us, to: them }))).json.id);
    const queued = (await post(t.app, "/api/messages/sms", smsSend({ from: us, to: texted }))).json.id;
    // The person then texts STOP to us as well, before the queued message is delivered.
    const stop = await post(t.app, "/api/webhooks/sms", { ...smsSend({ from: texted, to: us, body: "STOP" }), messaging_provider_id: `p-${texted}` });
    startDispatcher();
    for (const id of [...ids, queued]) expect((await finalStatus(id)).status).toBe("failed");
    expect(await optOuts(us)).toEqual(
      [
        { to_addr: them, source: "provider", reason: "twilio 21610: Attempt to send to unsubscribed recipient", message_id: expect.any(String) },
        { to_addr: texted, source: "inbound", reason: "STOP", message_id: stop.json.id },
      ].sort((a, b) => (a.to_addr < b.to_addr ? -1 : 1)),
    );
  });

  test("one result write carrying the same opt-out twice records it once", async () => {
    const us = phone();
    const them = phone();
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push((await post(t.app, "/api/messages/sms", smsSend({ from: us, to: them }))).json.id);
    const optOut = { pair: { from: us, to: them }, reason: "twilio 21610: Attempt to send to unsubscribed recipient" };
    await recordResults(t.database.sql, "test-holder", [], ids.map((messageId) => ({ messageId, end: "failed" as const, reason: optOut.reason, calls: 1, optOut })));
    expect(await optOuts(us)).toEqual([{ to_addr: them, source: "provider", reason: optOut.reason, message_id: expect.any(String) }]);
    expect(ids).toContain((await optOuts(us))[0]!.message_id!);
  });

  test("an email adapter's opt-out flag records nothing: only texts have a sender to opt out of", async () => {
    const from = email("from");
    const sent = await post(t.app, "/api/messages/email", emailSend({ from, to: email("to") }));
    const before = await countRows(t.database, "opt_outs");
    startDispatcher();
    expect((await finalStatus(sent.json.id)).status).toBe("failed");
    expect(await countRows(t.database, "opt_outs")).toBe(before);
  });
});
