import { type Case, type CaseContext, check, checkAccepted, checkEqual, checkError, checkStatus, fail, show } from "../case.ts";
import { accept, emailPayload, eventually, getMessage, inboundSmsPayload, type Json, page, smsPayload } from "./fixtures.ts";

const DONE = ["sent", "delivered"];
const NO_FAULTS = { timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, latency_ms: 0, delivery_report_pct: 0 };
/** Messages sent into a failing mock: more than the breaker's default threshold of five consecutive failures. */
const BREAKER_MESSAGES = 8;
/**
 * The breaker cool-down the case asks of the mock's runtime config (`breaker_open_secs`), instead of 30 s: the
 * shortest it takes, since the case waits it out on the run's critical path (the mock lane).
 */
const BREAKER_OPEN_SECS = 1;

/**
 * Replaces the mock provider's config with `changes` over the current one, and puts the current one back when the
 * case ends, whatever its outcome (`ctx.defer`).
 */
async function setMockConfig(ctx: CaseContext, changes: Json): Promise<Json> {
  const current = await ctx.http.get("/api/provider/mock/config");
  checkStatus(current, 200, "GET /api/provider/mock/config");
  const original = current.body;
  ctx.defer(async (http) => {
    const restored = await http.request("/api/provider/mock/config", { method: "PUT", json: original });
    if (restored.status !== 200) throw new Error(`could not restore the mock provider's config: HTTP ${restored.status} ${restored.text}`);
  });
  const changed = { ...original, ...changes };
  const put = await ctx.http.request("/api/provider/mock/config", { method: "PUT", json: changed });
  checkStatus(put, 200, "PUT /api/provider/mock/config");
  return original;
}

/**
 * Waits for a message to reach `sent` or `delivered`; a message that fails ends the wait as a failure. Each look
 * is an API request, charged to the run's rate limit, hence the modest pace.
 */
async function delivered(ctx: CaseContext, id: string, everyMs = 250): Promise<Json> {
  const m = await eventually(
    () => getMessage(ctx, id),
    (m) => DONE.includes(String(m.status)) || m.status === "failed" || m.status === "undelivered",
    everyMs,
  );
  if (!DONE.includes(String(m.status))) fail(`message ${id} ended ${String(m.status)}: ${show(m.status_reason)} after ${show(m.attempts)}`);
  return m;
}

/** The mock's own acceptances carry ids it made up (`mock-…`); anything else went to a real provider. */
function skipUnlessMock(ctx: CaseContext, m: Json): void {
  if (!String(m.provider_message_id ?? "").startsWith("mock-")) {
    ctx.skip(`the target delivers ${String(m.channel)} through provider ${String(m.provider)}, not the mock`);
  }
}

/** Sum of a Prometheus metric's samples whose labels include every one of `labels`. */
async function metricSum(ctx: CaseContext, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await ctx.http.get("/metrics", { headers: { accept: "text/plain" } })).text;
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = /^(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = match[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) sum += Number(match[3]);
  }
  return sum;
}

/** SPEC §7, when the target exposes the mock provider: its config, inbound injection, delivery, retries, breaker, reports. */
export const deliveryCases: Case[] = [
  {
    id: "mock.config",
    title: "the mock's config reads back as written, and out-of-range values are 400s",
    tags: ["mock", "provider"],
    spec: "§7 GET/PUT /api/provider/mock/config {timeout_pct, error_pct, ratelimit_pct, seed}; outside 0–100 or summing above 100 → 400",
    lane: "mock",
    needs: ["mock"],
    async run(ctx) {
      const a = await ctx.http.get("/api/provider/mock/config");
      checkStatus(a, 200, "GET /api/provider/mock/config");
      for (const field of ["timeout_pct", "error_pct", "ratelimit_pct"]) {
        const v = a.body[field];
        check(Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 100, `${field} is ${show(v)}, not an integer 0–100`);
      }
      check(a.body.seed === null || Number.isInteger(a.body.seed), `seed is ${show(a.body.seed)}, not an integer or null`);
      for (const [what, bad] of [
        ["error_pct 101", { error_pct: 101 }],
        ["timeout_pct -1", { timeout_pct: -1 }],
        ["shares summing to 120", { timeout_pct: 40, error_pct: 40, ratelimit_pct: 40 }],
        ["a fractional share", { ratelimit_pct: 2.5 }],
      ] as const) {
        const r = await ctx.http.request("/api/provider/mock/config", { method: "PUT", json: { ...a.body, ...bad } });
        checkError(r, 400, ["validation_failed", "bad_request"], `PUT with ${what}`);
      }
      checkEqual((await ctx.http.get("/api/provider/mock/config")).body, a.body, "the config after refused PUTs");
      const seed = 1000 + Math.floor(Math.random() * 1000);
      await setMockConfig(ctx, { seed });
      checkEqual((await ctx.http.get("/api/provider/mock/config")).body.seed, seed, "seed after a PUT");
    },
  },
  {
    id: "mock.inbound",
    title: "the mock injects inbound SMS and email, making up a provider id when none is given",
    tags: ["mock", "provider", "webhooks"],
    spec: "§7 POST /api/provider/mock/inbound: §4's shape plus channel; provider id optional (generated when absent); 202",
    lane: "mock",
    needs: ["mock", "webhooks"],
    async run(ctx) {
      const { type: _type, ...sms } = smsPayload(ctx);
      const a = await accept(ctx, "/api/provider/mock/inbound", { ...sms, channel: "sms" }, "an injected SMS without a provider id");
      const m = await getMessage(ctx, a.id);
      checkEqual([m.direction, m.status, m.channel], ["inbound", "received", "sms"], "direction, status and channel");
      const b = await accept(ctx, "/api/provider/mock/inbound", { ...sms, channel: "sms" }, "the same body injected again");
      check(b.id !== a.id, "two injections without provider ids were taken for one delivery");
      const e = await accept(ctx, "/api/provider/mock/inbound", { ...emailPayload(ctx), channel: "email" }, "an injected email");
      checkEqual((await getMessage(ctx, e.id)).channel, "email", "channel of the injected email");
      const repeat = { ...inboundSmsPayload(ctx), channel: "sms" };
      const r1 = await accept(ctx, "/api/provider/mock/inbound", repeat, "an injection with a provider id");
      const r2 = await accept(ctx, "/api/provider/mock/inbound", repeat, "the same injection again");
      checkEqual(r2.id, r1.id, "id of a repeated provider id");
    },
  },
  {
    id: "delivery.sent",
    title: "with no faults injected, an SMS and an email reach sent, each with its accepted attempt recorded",
    tags: ["mock", "delivery"],
    spec: "§7 each accepted outbound message is handed to the provider for its channel, asynchronously; each attempt is recorded; /metrics worker_processed",
    lane: "mock",
    needs: ["mock"],
    async run(ctx) {
      const before = Number((await ctx.http.get("/metrics", { headers: { accept: "application/json" } })).body.worker_processed ?? 0);
      await setMockConfig(ctx, NO_FAULTS);
      const sms = await accept(ctx, "/api/messages/sms", smsPayload(ctx), "an SMS");
      const email = await accept(ctx, "/api/messages/email", emailPayload(ctx), "an email");
      for (const id of [sms.id, email.id]) {
        const m = await delivered(ctx, id);
        skipUnlessMock(ctx, m);
        const attempts = m.attempts as Json[];
        check(attempts.length >= 1, `message ${id} is ${String(m.status)} with no attempt recorded`);
        checkEqual(attempts.at(-1)!.outcome, "accepted", `outcome of message ${id}'s last attempt`);
        check(typeof m.provider === "string" && m.provider.length > 0, `message ${id} names no provider`);
      }
      const after = await eventually(
        async () => Number((await ctx.http.get("/metrics", { headers: { accept: "application/json" } })).body.worker_processed ?? 0),
        (n) => n >= before + 2,
        250,
      );
      ctx.note(`worker_processed went from ${before} to ${after}`);
    },
  },
  {
    id: "delivery.reports",
    title: "delivery reports move a message forward only; an unknown or inbound message is 404",
    tags: ["mock", "delivery", "reports"],
    spec: "§7 POST /api/provider/mock/reports → 202, forward-only (§1); unknown message → 404",
    lane: "mock",
    needs: ["mock"],
    async run(ctx) {
      await setMockConfig(ctx, NO_FAULTS);
      const one = await accept(ctx, "/api/messages/sms", smsPayload(ctx), "a message to report delivered");
      const two = await accept(ctx, "/api/messages/email", emailPayload(ctx), "a message to report undelivered");
      const sent = await delivered(ctx, one.id);
      skipUnlessMock(ctx, sent);
      const report = (body: Json) => ctx.http.post("/api/provider/mock/reports", body);

      const d = await report({ message_id: one.id, status: "delivered" });
      checkStatus(d, 202, "a delivered report");
      checkEqual([d.body.status, d.body.id, d.body.message_status], ["accepted", one.id, "delivered"], "the report's answer");
      checkEqual((await getMessage(ctx, one.id)).status, "delivered", "status after the report");
      const late = await report({ message_id: one.id, status: "undelivered" });
      checkStatus(late, 202, "a late undelivered report");
      checkEqual((await getMessage(ctx, one.id)).status, "delivered", "status after a late report (it must not move back)");

      const other = await delivered(ctx, two.id);
      const u = await report({ provider_message_id: other.provider_message_id, status: "undelivered", error_code: "30003" });
      checkStatus(u, 202, "an undelivered report by provider_message_id");
      checkEqual((await getMessage(ctx, two.id)).status, "undelivered", "status after an undelivered report");

      checkError(await report({ message_id: "987654321098765", status: "delivered" }), 404, "not_found", "a report on an unknown message");
      if (ctx.target.features.get("webhooks") === true) {
        const inbound = await accept(ctx, "/api/provider/mock/inbound", { ...smsPayload(ctx), channel: "sms" }, "an inbound message");
        checkError(await report({ message_id: inbound.id, status: "delivered" }), 404, "not_found", "a report on an inbound message");
      }
      checkError(await report({ message_id: one.id, status: "read" }), 400, ["validation_failed", "bad_request"], "a report with an unknown status");
    },
  },
  {
    id: "delivery.retry-rate-limited",
    title: "a rate-limited provider call is retried, and the message reaches sent once the provider accepts",
    tags: ["mock", "delivery", "retries"],
    spec: "§7 a provider 429 or 5xx or timeout is retried with exponential backoff and jitter, honouring Retry-After; each attempt is recorded",
    lane: "mock",
    needs: ["mock"],
    async run(ctx) {
      await setMockConfig(ctx, { ...NO_FAULTS, ratelimit_pct: 100 });
      const a = await accept(ctx, "/api/messages/sms", smsPayload(ctx), "a send into a rate-limited provider");
      const held = await eventually(
        () => getMessage(ctx, a.id),
        (m) => (m.attempts as Json[]).some((t) => String(t.outcome).includes("rate")) || DONE.includes(String(m.status)),
        250,
      );
      if (DONE.includes(String(held.status))) skipUnlessMock(ctx, held);
      check(!DONE.includes(String(held.status)), `message ${a.id} was ${String(held.status)} although every call was rate-limited`);
      checkStatus(await ctx.http.request("/api/provider/mock/config", { method: "PUT", json: { ...(await ctx.http.get("/api/provider/mock/config")).body, ratelimit_pct: 0 } }), 200, "PUT ratelimit_pct 0");
      const m = await delivered(ctx, a.id);
      const outcomes = (m.attempts as Json[]).map((t) => String(t.outcome));
      check(outcomes.length >= 2 && outcomes.at(-1) === "accepted", `attempts were ${show(outcomes)}: expected rate-limited ones, then accepted`);
      ctx.note(`attempts: ${outcomes.join(", ")}`);
    },
  },
  {
    id: "delivery.breaker",
    title: "a failing provider opens its circuit breaker, and after the cool-down one probe closes it and delivery resumes",
    tags: ["mock", "delivery", "breaker"],
    spec: "§7 a per-provider circuit breaker stops calls to a failing provider and lets a single probe through after a cool-down",
    lane: "mock",
    needs: ["mock"],
    // Waits out the breaker's cool-down, shortened to BREAKER_OPEN_SECS through the mock's runtime config.
    minTimeoutSecs: 30,
    async run(ctx) {
      const opened = await metricSum(ctx, "messaging_breaker_transitions_total", { to: "open" });
      const original = await setMockConfig(ctx, { ...NO_FAULTS, error_pct: 100, breaker_open_secs: BREAKER_OPEN_SECS });
      const set = await ctx.http.get("/api/provider/mock/config");
      if (set.body.breaker_open_secs !== BREAKER_OPEN_SECS) {
        // Without it the case would wait out API_BREAKER_OPEN_SECS (30 s by default, or longer): not what a
        // quick check of a deployment should spend, and not something the run can see or bound.
        ctx.skip("the target's mock provider has no runtime breaker cool-down (breaker_open_secs), so the open breaker could only be waited out at API_BREAKER_OPEN_SECS");
      }
      // One pair, so one list request shows every message's status.
      const pair = emailPayload(ctx);
      let conversationId = "";
      for (let i = 0; i < BREAKER_MESSAGES; i++) {
        const payload = { ...pair, body: ctx.data.body(`breaker ${i}`), timestamp: ctx.data.timestamp(i) };
        conversationId = checkAccepted(await ctx.http.post("/api/messages/email", payload), `send ${i}`).conversationId;
      }
      // /metrics is outside the rate limit, so the waits watch it rather than the messages.
      await eventually(() => metricSum(ctx, "messaging_breaker_transitions_total", { to: "open" }), (n) => n > opened, 200);
      checkStatus(
        await ctx.http.request("/api/provider/mock/config", { method: "PUT", json: { ...original, ...NO_FAULTS, breaker_open_secs: BREAKER_OPEN_SECS } }),
        200,
        "PUT the faults off",
      );
      ctx.note("breaker open; waiting for its cool-down and probe");
      await eventually(() => metricSum(ctx, "messaging_breaker_state"), (n) => n === 0, 200);
      const messages = await eventually(
        async () => (await page(ctx, `/api/conversations/${conversationId}/messages?pageSize=50`)).items,
        (items) => items.every((m) => DONE.includes(String(m.status)) || m.status === "failed"),
        500,
      );
      const failed = messages.filter((m) => !DONE.includes(String(m.status)));
      check(failed.length === 0, `messages ${failed.map((m) => String(m.id)).join(", ")} failed instead of waiting out the open breaker`);
      check(messages.length === BREAKER_MESSAGES, `${messages.length} of ${BREAKER_MESSAGES} messages listed`);
    },
  },
];
