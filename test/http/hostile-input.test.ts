import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { processEnv } from "../../src/config/index.ts";
import { RUNTIME_MAX_REQUEST_BODY_SIZE } from "../../src/server.ts";
import { buildTestApp, captureLogger, type TestApp } from "../helpers/app.ts";
import { type HostileRequest, hostileRequests, validSms } from "../helpers/hostile-requests.ts";
import { UNLIMITED } from "../helpers/messaging.ts";
import { rawHttp } from "../helpers/raw-http.ts";

// The service tried as an attacker would, on both databases: a seeded storm of malformed and hostile requests
// against every route of the app listening on a loopback port as `serve` listens. Replay a failure with
// HOSTILE_SEED=<the printed seed>.
const SEED = Number(processEnv().HOSTILE_SEED ?? 20261129);
const COUNT = 2000;
const CONCURRENCY = 6;
const SLOWEST_MS = 1000;
const cases = hostileRequests(SEED, COUNT);

/** What one answer looked like, reduced to what the assertions need. */
interface Answer {
  status: number;
  headers: Map<string, string> | Headers;
  json: any;
  ms: number;
}

const header = (headers: Answer["headers"], name: string) => (headers instanceof Headers ? headers.get(name) : headers.get(name) ?? null);

async function send(base: string, port: number, c: HostileRequest): Promise<Answer> {
  if (c.raw !== undefined) return rawHttp(port, c.raw, 2 * SLOWEST_MS);
  const started = performance.now();
  const res = await fetch(base + c.path, { method: c.method, headers: c.headers, body: c.body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, ms: performance.now() - started };
}

/**
 * Why an answer breaks the contract, or null. The runtime's parser-tier answers carry no header but
 * `Connection: close` (or the connection closes without an answer); they are allowed only where the case says
 * the runtime may answer (the README lists them). Every other answer is ours and is held to the contract.
 */
function violation(c: HostileRequest, a: Answer): string | null {
  if (a.ms > SLOWEST_MS) return `answered in ${Math.round(a.ms)} ms`;
  const names = [...a.headers.keys()];
  const runtime = a.status === 0 || names.every((name) => name === "connection");
  if (runtime) return c.runtimeMayAnswer ? null : `no answer from our code (status ${a.status})`;
  if (a.status >= 500) return `answered ${a.status}`;
  const requestId = header(a.headers, "x-request-id");
  if (!requestId) return "no X-Request-Id";
  for (const [name, value] of [["x-content-type-options", "nosniff"], ["x-frame-options", "DENY"], ["referrer-policy", "no-referrer"]] as const) {
    if (header(a.headers, name) !== value) return `${name} is ${header(a.headers, name)}`;
  }
  if (!header(a.headers, "content-security-policy")) return "no Content-Security-Policy";
  if (a.status >= 400 && c.method !== "HEAD") {
    const body = a.json;
    if (typeof body?.code !== "string" || typeof body?.message !== "string" || body?.request_id !== requestId) {
      return `not the envelope: ${JSON.stringify(body)?.slice(0, 200)}`;
    }
  }
  return null;
}

describe.each(["postgres", "embedded"] as const)("hostile input on %s", (kind) => {
  let t: TestApp;
  let logs: ReturnType<typeof captureLogger>;
  let base: string;
  let port: number;
  const accepted = new Set<string>();

  beforeAll(async () => {
    logs = captureLogger("warn");
    t = await buildTestApp({ database: kind, logger: logs.logger, config: { ...UNLIMITED } });
    t.app.listen({ port: 0, hostname: "127.0.0.1", maxRequestBodySize: RUNTIME_MAX_REQUEST_BODY_SIZE });
    port = t.app.server!.port!;
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await t.app.stop(true);
    await t.close();
  });

  test(`${COUNT} seeded hostile requests: no 5xx, the envelope and headers on every answer of ours, none slower than ${SLOWEST_MS} ms`, async () => {
    console.log(`hostile input on ${kind}: seed ${SEED} (replay with HOSTILE_SEED=${SEED}), ${cases.length} requests`);
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        const answer = await send(base, port, c);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        if (answer.status >= 200 && answer.status < 300 && typeof answer.json?.id === "string") accepted.add(answer.json.id);
        const problem = violation(c, answer);
        if (problem) failures.push(`${c.name}: ${problem}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    console.log(`hostile input on ${kind}: statuses ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}`);
    expect(failures).toEqual([]);
    expect(logs.lines().filter((l) => l.level === "error" || l.level === "fatal")).toEqual([]);
  });

  test("the service is healthy afterwards: /healthz, a valid send, and reads that agree with the database", async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const sms = validSms(SEED);
    const sent = await fetch(`${base}/api/messages/sms`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(sms) });
    expect(sent.status).toBe(202);
    const { id } = (await sent.json()) as { id: string };
    accepted.add(id);
    const read = (await (await fetch(`${base}/api/messages/${id}`)).json()) as Record<string, unknown>;
    expect(read).toMatchObject({ id, from: sms.from, to: sms.to, body: sms.body, direction: "outbound" });

    // Every message the storm got accepted is stored, and nothing else; the counters agree with the rows.
    const [rows] = await t.database.sql.query<{ messages: number; conversations: number; counted: number }>(
      "SELECT (SELECT count(*) FROM messages)::int AS messages, (SELECT count(*) FROM conversations)::int AS conversations, (SELECT coalesce(sum(message_count), 0) FROM conversations)::int AS counted",
    );
    expect(rows!.messages).toBe(accepted.size);
    expect(rows!.counted).toBe(rows!.messages);
    const list = (await (await fetch(`${base}/api/conversations`)).json()) as { meta: { total: number } };
    expect(list.meta.total).toBe(rows!.conversations);
  });
});
