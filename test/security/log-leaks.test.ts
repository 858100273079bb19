import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { signWebhook } from "../../src/security/webhook-signature.ts";
import { ensureBinary, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { buildTestApp, captureLogger, request, type TestApp } from "../helpers/app.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { type FaultProxy, startFaultProxy } from "../helpers/fault-proxy.ts";
import { email, phone, smsSend, smsWebhook, emailSend, emailWebhook } from "../helpers/messaging.ts";

// A whole run's logs, read as an attacker with access to them would: the compiled binary at LOG_LEVEL=debug
// (sends, webhooks, keyed retries, a malformed send, delivery by the workers, a database outage), a second
// instance with MESSAGING_AUTH=on and webhook secrets (a real key made by `keys create` and used, forged keys and
// signatures refused), and the in-process app for the one thing a
// binary cannot be made to do (a 500 from a failed query). Every body, address and credential the run used is
// then searched for in everything written.

const run = crypto.randomUUID().slice(0, 8);
const BEARER = `msg_k3y${run}_${crypto.randomUUID().replaceAll("-", "")}`;
const SIGNATURE = `t=1700000000,v1=${"ab".repeat(32)}${run}`;
const COOKIE = `session=cookie-${run}`;
const API_KEY_HEADER = `xkey-${run}`;
const CREDENTIALS = { authorization: `Bearer ${BEARER}`, "x-messaging-signature": SIGNATURE, cookie: COOKIE, "x-api-key": API_KEY_HEADER };

/** Everything the run must never write: bodies, addresses, credentials (filled as the run makes them). */
const secrets = new Set<string>([BEARER, SIGNATURE, COOKIE, API_KEY_HEADER]);
function body(label: string): string {
  const text = `private body ${label} ${crypto.randomUUID()}`;
  secrets.add(text);
  return text;
}
function address(kind: "phone" | "email"): string {
  const value = kind === "phone" ? phone() : email("secret");
  secrets.add(value);
  if (kind === "phone") secrets.add(value.slice(1)); // the digits alone, as a normalised or encoded form would show
  else secrets.add(value.split("@")[0]!);
  return value;
}

let pg: TestDatabase;
let proxy: FaultProxy;
let open: ServeProcess | undefined;
let guarded: ServeProcess | undefined;
let inProcess: TestApp | undefined;
const output: { name: string; text: string }[] = [];

async function call(base: string, method: string, path: string, payload?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json", ...CREDENTIALS, ...headers },
    body: payload === undefined ? undefined : JSON.stringify(payload),
    signal: AbortSignal.timeout(20_000),
  });
  await res.arrayBuffer();
  return res.status;
}

beforeAll(async () => {
  await ensureBinary();
  pg = await createTestDatabase();
  proxy = await startFaultProxy();
}, 120_000);

afterAll(async () => {
  await open?.stop().catch(() => {});
  await guarded?.stop().catch(() => {});
  await inProcess?.close();
  await proxy?.close();
  await pg?.drop();
});

describe("the logs of a full run", () => {
  test("an instance with auth off: sends, webhooks, retries, a malformed send, deliveries and a database outage", async () => {
    open = await startServe({
      env: {
        DATABASE_URL: proxy.url(pg.url),
        MESSAGING_AUTO_MIGRATE: "true",
        LOG_LEVEL: "debug",
        MESSAGING_AUTH: "off",
        MESSAGING_DB_CONNECT_TIMEOUT_MS: "500",
        MESSAGING_WRITE_OUTCOME_TIMEOUT_MS: "500",
        API_RATE_LIMIT_PER_IP_PER_MIN: "100000",
        API_RATE_LIMIT_PER_SENDER_PER_MIN: "100000",
      },
    });
    const base = open.url;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      statuses.push(await call(base, "POST", "/api/messages/sms", smsSend({ from: address("phone"), to: address("phone"), body: body(`sms ${i}`) })));
      statuses.push(
        await call(base, "POST", "/api/messages/email", emailSend({ from: address("email"), to: address("email"), body: body(`email ${i}`) })),
      );
      statuses.push(await call(base, "POST", "/api/webhooks/sms", smsWebhook({ from: address("phone"), to: address("phone"), body: body(`in ${i}`) })));
      statuses.push(
        await call(base, "POST", "/api/webhooks/email", emailWebhook({ from: address("email"), to: address("email"), body: body(`in mail ${i}`) })),
      );
    }
    const keyed = smsSend({ from: address("phone"), to: address("phone"), body: body("keyed") });
    statuses.push(await call(base, "POST", "/api/messages/sms", keyed, { "idempotency-key": `idem-${run}` }));
    statuses.push(await call(base, "POST", "/api/messages/sms", keyed, { "idempotency-key": `idem-${run}` }));
    expect(statuses.every((s) => s === 202 || s === 200)).toBe(true);
    // Malformed: the recipient is not an address (and carries a body-like secret).
    expect(await call(base, "POST", "/api/messages/sms", smsSend({ from: address("phone"), to: `not a number ${body("bad to")}` }))).toBe(400);
    expect(await call(base, "GET", "/api/conversations")).toBe(200);
    await Bun.sleep(1500); // the delivery workers hand the sends to the mock provider and log at debug

    // An outage: every connection reset and new ones refused, while sends and the workers keep trying.
    proxy.refuse();
    proxy.reset();
    const during = [
      await call(base, "POST", "/api/messages/sms", smsSend({ from: address("phone"), to: address("phone"), body: body("outage") })),
      await call(base, "POST", "/api/webhooks/sms", smsWebhook({ from: address("phone"), to: address("phone"), body: body("outage in") })),
    ];
    expect(during).toEqual([503, 503]);
    await Bun.sleep(1000);
    await proxy.heal();
    expect(await open.stop()).toBe(0);

    const stdout = open.stdout();
    output.push({ name: "open instance stdout", text: stdout }, { name: "open instance stderr", text: open.stderr() });
    // The capture saw the run: request lines for every kind of answer, and the outage.
    const lines = stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const statusesLogged = new Set(lines.filter((l) => l.msg === "request").map((l) => l.status));
    for (const status of [202, 400, 503]) expect(statusesLogged).toContain(status);
    expect(lines.some((l) => l.level === "warn" || l.level === "error")).toBe(true);
  }, 60_000);

  test("an instance with auth on and signed webhooks: a real key used and created, forged keys and signatures refused", async () => {
    const made = await runBinary(["keys", "create", "--name", "leak-test", "--json"], { env: { DATABASE_URL: pg.url } });
    expect(made.exitCode).toBe(0);
    const key = (JSON.parse(made.stdout) as { key: string }).key;
    secrets.add(key);
    secrets.add(key.slice("msg_".length + 11)); // the secret part alone
    const webhookSecret = `whsec-${crypto.randomUUID()}`;
    secrets.add(webhookSecret);
    guarded = await startServe({ env: { DATABASE_URL: pg.url, LOG_LEVEL: "debug", MESSAGING_AUTH: "on", MESSAGING_WEBHOOK_SECRETS: webhookSecret } });
    const base = guarded.url;
    const real = { authorization: `Bearer ${key}` };
    expect(await call(base, "POST", "/api/messages/sms", smsSend({ from: address("phone"), to: address("phone"), body: body("with a real key") }), real)).toBe(202);
    expect(await call(base, "GET", "/api/conversations", undefined, real)).toBe(200);
    expect(await call(base, "POST", "/api/messages/sms", smsSend({ from: address("phone"), to: address("phone"), body: body("unauthorised") }))).toBe(401);
    expect(await call(base, "GET", "/api/conversations")).toBe(401);
    expect(await call(base, "GET", "/api/conversations", undefined, { authorization: `Basic ${btoa(`user:${BEARER}`)}` })).toBe(401);
    const inbound = JSON.stringify(smsWebhook({ from: address("phone"), to: address("phone"), body: body("signed in") }));
    const signature = signWebhook(webhookSecret, new TextEncoder().encode(inbound), Math.floor(Date.now() / 1000));
    secrets.add(signature.split("v1=")[1]!);
    const signed = await fetch(`${base}/api/webhooks/sms`, { method: "POST", headers: { "content-type": "application/json", "x-messaging-signature": signature }, body: inbound });
    expect(signed.status).toBe(202);
    const forged = await fetch(`${base}/api/webhooks/sms`, { method: "POST", headers: { "content-type": "application/json", "x-messaging-signature": SIGNATURE }, body: inbound });
    expect(forged.status).toBe(401);
    expect(await guarded.stop()).toBe(0);
    const stdout = guarded.stdout();
    for (const status of ['"status":202', '"status":401']) expect(stdout).toContain(status);
    output.push({ name: "auth-on instance stdout", text: stdout });
    // A key existed before this start, so nothing is printed on stderr either.
    output.push({ name: "auth-on instance stderr", text: guarded.stderr() });
  }, 60_000);

  test("in process: a 500 from a failed query whose parameters are a body and an address", async () => {
    const logs = captureLogger("debug");
    inProcess = await buildTestApp({ logger: logs.logger });
    const t = inProcess;
    const failing = body("in a failed query");
    const to = address("phone");
    const app = t.app.post("/boom-send", async () => {
      try {
        await t.database.db.execute(sql`insert into no_such_table (body, addr) values (${failing}, ${to})`);
      } catch (cause) {
        throw Object.assign(new Error("send step failed", { cause }), { job: { message: { body: failing, to } } });
      }
      return "unreachable";
    }) as unknown as TestApp["app"];
    const res = await request(app, "POST", "/boom-send", { body: { body: failing, to }, headers: CREDENTIALS });
    expect(res.status).toBe(500);
    expect(logs.raw()).toContain("no_such_table");
    output.push({ name: "in-process logs", text: logs.raw() });
  });

  test("no body, address, key, signature, cookie or Authorization value appears anywhere in what was written", () => {
    expect(output.map((o) => o.name)).toEqual(["open instance stdout", "open instance stderr", "auth-on instance stdout", "auth-on instance stderr", "in-process logs"]);
    expect(secrets.size).toBeGreaterThan(60);
    const leaks = output.flatMap(({ name, text }) => [...secrets].filter((s) => text.includes(s)).map((s) => `${name}: ${s}`));
    expect(leaks).toEqual([]);
  });
});
