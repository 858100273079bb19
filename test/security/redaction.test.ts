import { describe, expect, test } from "bun:test";
import { REDACTED_HEADERS, REDACTED_KEYS, redactLogObject } from "../../src/observability/logger.ts";
import { captureLogger } from "../helpers/app.ts";

// Attacks on the log: a secret, body or address placed where the redaction walk might not look.

const SECRET = "SECRET-VALUE-7f3a";

/** Logs `obj` at info and returns the raw output and the one parsed line. */
function logOnce(obj: Record<string, unknown>): { raw: string; line: Record<string, unknown> } {
  const { logger, raw, lines } = captureLogger();
  logger.info(obj, "line");
  return { raw: raw(), line: lines()[0]! };
}

/** `{ a: { a: … { [key]: value } } }`, `levels` objects deep. */
function nest(levels: number, leaf: Record<string, unknown>): Record<string, unknown> {
  let obj = leaf;
  for (let i = 0; i < levels; i++) obj = { a: obj };
  return obj;
}

describe("redaction at any depth", () => {
  test.each([2, 5, 8, 11])("a sensitive key %i objects deep is redacted and its neighbours kept", (levels) => {
    const { raw, line } = logOnce(nest(levels, { body: SECRET, id: "m1" }));
    expect(raw).not.toContain(SECRET);
    let leaf = line;
    for (let i = 0; i < levels; i++) leaf = leaf.a as Record<string, unknown>;
    expect(leaf).toEqual({ body: "[redacted]", id: "m1" });
  });

  test("the shape the old walk missed: a job carrying a message", () => {
    const { raw, line } = logOnce({ job: { message: { body: SECRET, to: "+12015550123", from: "+12015550124", id: "m2" } } });
    for (const leaked of [SECRET, "+12015550123", "+12015550124"]) expect(raw).not.toContain(leaked);
    expect(line.job).toEqual({ message: { body: "[redacted]", to: "[redacted]", from: "[redacted]", id: "m2" } });
  });

  test("arrays of objects, arrays of arrays, and objects in arrays in objects", () => {
    const { raw, line } = logOnce({
      batch: [{ to: SECRET, id: 1 }, { body: SECRET, id: 2 }],
      grid: [[{ password: SECRET }], [[{ token: SECRET, n: 3 }]]],
      outer: { list: [{ inner: { attachments: [SECRET] } }] },
      plain: ["visible", 4],
    });
    expect(raw).not.toContain(SECRET);
    expect(line.batch).toEqual([{ to: "[redacted]", id: 1 }, { body: "[redacted]", id: 2 }]);
    expect(line.grid).toEqual([[{ password: "[redacted]" }], [[{ token: "[redacted]", n: 3 }]]]);
    expect(line.plain).toEqual(["visible", 4]);
  });

  test.each([...REDACTED_KEYS].flatMap((key) => [key, key.toUpperCase(), key[0]!.toUpperCase() + key.slice(1)]))(
    "key %s is redacted whatever its letter case, three levels down",
    (key) => {
      const { raw } = logOnce(nest(3, { [key]: SECRET }));
      expect(raw).not.toContain(SECRET);
    },
  );

  test.each(["API-KEY", "Api_Key", "DATABASE_URL", "webhookSecret", "webhook_secrets", "accessToken", "proxy-authorization", "x-signature", "userPassword"])(
    "a key spelled %s (other separators, or a sensitive word inside it) is redacted",
    (key) => {
      expect(logOnce({ deep: { deeper: { [key]: SECRET } } }).raw).not.toContain(SECRET);
    },
  );

  test("keys that merely resemble a sensitive one are kept", () => {
    const { line } = logOnce({ total: 3, topic: "t", status: 202, route: "/api/messages/sms", request_id: "r1" });
    expect(line).toMatchObject({ total: 3, topic: "t", status: 202, route: "/api/messages/sms", request_id: "r1" });
  });

  test.each([...REDACTED_HEADERS])("header %s is redacted in headers objects at depth, in any letter case", (name) => {
    const { raw, line } = logOnce({ ctx: { req: { upstream: { headers: { [name.toUpperCase()]: SECRET, accept: "*/*" } } } } });
    expect(raw).not.toContain(SECRET);
    expect(JSON.stringify(line)).toContain('"accept":"*/*"');
  });

  test("a Headers object (whose toJSON writes every header) is redacted, at the top and deeper", () => {
    const headers = new Headers({ Authorization: `Bearer msg_ab12_${SECRET}`, "X-Messaging-Signature": `t=1,v1=${SECRET}`, accept: "*/*" });
    const { raw, line } = logOnce({ headers, req: { headers } });
    expect(raw).not.toContain(SECRET);
    expect(line.headers).toEqual({ authorization: "[redacted]", "x-messaging-signature": "[redacted]", accept: "*/*" });
  });

  test("class instances are walked like the objects JSON makes of them", () => {
    class Job {
      constructor(
        readonly id: string,
        readonly message: { body: string; to: string },
      ) {}
    }
    const { raw, line } = logOnce({ job: new Job("j1", { body: SECRET, to: SECRET }) });
    expect(raw).not.toContain(SECRET);
    expect(line.job).toEqual({ id: "j1", message: { body: "[redacted]", to: "[redacted]" } });
  });

  test("Maps and Sets are written as JSON writes them ({}), so nothing inside reaches the line", () => {
    const { raw } = logOnce({ pending: new Map([["body", SECRET]]), seen: new Set([SECRET]) });
    expect(raw).not.toContain(SECRET);
  });

  test("a cycle ends at the depth bound instead of hanging, with nothing sensitive written", () => {
    const job: Record<string, unknown> = { id: "j2", body: SECRET };
    job.self = job;
    const list: unknown[] = [{ to: SECRET }];
    list.push(list);
    const started = performance.now();
    const { raw, line } = logOnce({ job, list });
    expect(performance.now() - started).toBeLessThan(1000);
    expect(raw).not.toContain(SECRET);
    expect((line.job as Record<string, unknown>).id).toBe("j2");
    expect(raw).toContain("[too deep]");
  });

  test("the flat line of every request is passed through as the same object (nothing copied)", () => {
    const line = { request_id: "r1", method: "GET", route: "/healthz", status: 200, duration_ms: 0.4 };
    expect(redactLogObject(line)).toBe(line);
  });

  test("a nested change copies only the path to it; the caller's objects are untouched", () => {
    const kept = { id: "k" };
    const message = { body: SECRET, meta: kept };
    const input = { job: { message }, other: kept };
    const out = redactLogObject(input) as { job: { message: { body: string; meta: unknown } }; other: unknown };
    expect(out.job.message.body).toBe("[redacted]");
    expect(out.other).toBe(kept);
    expect(out.job.message.meta).toBe(kept);
    expect(message.body).toBe(SECRET);
  });
});

describe("errors", () => {
  test("err keeps type, message and stack; its own sensitive fields are redacted", () => {
    const err = Object.assign(new TypeError("send failed"), { job: { message: { body: SECRET, to: SECRET } }, code: "E1" });
    const { logger, raw, lines } = captureLogger();
    logger.error({ err }, "boom");
    const logged = lines()[0]!.err as Record<string, unknown>;
    expect(raw()).not.toContain(SECRET);
    expect(logged).toMatchObject({ type: "TypeError", message: "send failed", code: "E1" });
    expect(logged.stack).toContain("TypeError: send failed");
  });

  test("an err with a cause keeps both messages and stacks; a failed query's parameters in the cause are redacted", () => {
    const query = Object.assign(new Error(`Failed query: insert into messages (body) values ($1)\nparams: ${SECRET},+12015550199`), {
      params: [SECRET, "+12015550199"],
    });
    const err = new Error("write failed", { cause: query });
    const { logger, raw, lines } = captureLogger();
    logger.error({ err }, "boom");
    expect(raw()).not.toContain(SECRET);
    expect(raw()).not.toContain("+12015550199");
    const logged = lines()[0]!.err as Record<string, string>;
    expect(logged.message).toContain("write failed");
    expect(logged.message).toContain("Failed query: insert into messages");
    expect(logged.stack).toContain("caused by");
  });

  test("an error deeper in the line (not under err) is serialised with its message, and redacted", () => {
    const failure = Object.assign(new Error("provider refused"), { request: { body: SECRET } });
    const { raw, line } = logOnce({ results: [{ id: "m3", error: failure }] });
    expect(raw).not.toContain(SECRET);
    const logged = (line.results as { error: Record<string, unknown> }[])[0]!.error;
    expect(logged).toMatchObject({ type: "Error", message: "provider refused", request: { body: "[redacted]" } });
  });
});
