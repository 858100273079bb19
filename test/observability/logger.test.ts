import { describe, expect, test } from "bun:test";
import { REDACTED_HEADERS, REDACTED_KEYS, redactLogObject, writeRequestLine } from "../../src/observability/logger.ts";
import { captureLogger } from "../helpers/app.ts";

describe("log redaction", () => {
  test.each([...REDACTED_KEYS])("%s is redacted at the top of a line and one level down", (key) => {
    const { logger, lines } = captureLogger();
    logger.info({ [key]: "SECRET-VALUE", nested: { [key]: "SECRET-VALUE", keep: "visible" } }, "line");
    const [line] = lines();
    expect(line![key]).toBe("[redacted]");
    expect(line!.nested).toEqual({ [key]: "[redacted]", keep: "visible" });
  });

  test.each([...REDACTED_HEADERS])("header %s is redacted in headers objects, whatever its letter case", (name) => {
    const { logger, raw, lines } = captureLogger();
    logger.info({ req: { headers: { [name.toUpperCase()]: "SECRET-VALUE", accept: "*/*" } }, headers: { [name]: "SECRET-VALUE" } }, "line");
    expect(raw()).not.toContain("SECRET-VALUE");
    expect((lines()[0]!.req as { headers: Record<string, string> }).headers.accept).toBe("*/*");
  });

  test("everything else passes unchanged, and the caller's object is not modified", () => {
    const message = { body: "hello", id: "7" };
    const input = { request_id: "r1", status: 202, message };
    const out = redactLogObject(input);
    expect(out).toEqual({ request_id: "r1", status: 202, message: { body: "[redacted]", id: "7" } });
    expect(message.body).toBe("hello");
    const untouched = { request_id: "r2", route: "/healthz" };
    expect(redactLogObject(untouched)).toBe(untouched);
  });

  test("errors keep their message while a failed query's parameters are redacted", () => {
    const { logger, raw } = captureLogger();
    const err = Object.assign(new Error("Failed query: insert into messages values ($1)\nparams: +12015550100,hello there"), {
      params: ["+12015550100", "hello there"],
    });
    logger.error({ err }, "unhandled error");
    expect(raw()).toContain("Failed query: insert into messages");
    expect(raw()).not.toContain("hello there");
    expect(raw()).not.toContain("+12015550100");
  });
});

describe("log line time", () => {
  test("every line carries the ISO time it was written at, also when lines share a millisecond", async () => {
    const { logger, lines } = captureLogger();
    const before = Date.now();
    for (let i = 0; i < 50; i++) logger.info({ i }, "line");
    await Bun.sleep(5);
    logger.info("later");
    const after = Date.now();
    const times = lines().map((l) => l.time as string);
    expect(times).toHaveLength(51);
    for (const time of times) {
      expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(Date.parse(time)).toBeGreaterThanOrEqual(before);
      expect(Date.parse(time)).toBeLessThanOrEqual(after);
    }
    expect(Date.parse(times.at(-1)!)).toBeGreaterThan(Date.parse(times[0]!));
  });
});

describe("the per-request line", () => {
  const fields = [
    { request_id: "0b9e5c1a-2f4d-4c6e-9a8b-7c6d5e4f3a2b", method: "GET", route: "/healthz", status: 200, duration_ms: 0.4 },
    { request_id: 'odd"id\\with\u0001bytes', method: "POST", route: "/api/messages/sms", status: 503, duration_ms: 12 },
    { request_id: "r", method: "DELETE", route: "unmatched", status: 404, duration_ms: 1234.5 },
  ];
  test.each(fields)("is written byte for byte as pino writes the same fields (%o)", (line) => {
    const viaPino = captureLogger();
    const direct = captureLogger();
    viaPino.logger.info(line, "request");
    writeRequestLine(direct.logger, line);
    const withoutTime = (text: string) => text.replace(/"time":"[^"]*"/, '"time":"T"');
    expect(withoutTime(direct.raw())).toBe(withoutTime(viaPino.raw()));
    expect(direct.lines()[0]).toMatchObject({ level: "info", service: "messaging", msg: "request", ...line });
  });
});

describe("the per-request line on stdout (Bun's native writer, written in pieces)", () => {
  test("every line, the cached parts reused across lines, is byte for byte pino's", async () => {
    const logger = new URL("../../src/observability/logger.ts", import.meta.url).pathname;
    const fields = [
      { request_id: "0b9e5c1a-2f4d-4c6e-9a8b-7c6d5e4f3a2b", method: "GET", route: "/healthz", status: 200, duration_ms: 0.4 },
      { request_id: "0b9e5c1a-2f4d-4c6e-9a8b-7c6d5e4f3a2c", method: "GET", route: "/healthz", status: 200, duration_ms: 17 },
      { request_id: 'odd"id\\with\u0001bytes', method: "POST", route: "/api/messages/sms", status: 503, duration_ms: 12 },
      { request_id: "r", method: "DELETE", route: "unmatched", status: 404, duration_ms: 1234.5 },
    ];
    const script = `
      const { createLogger, flushLogger, writeRequestLine } = await import(${JSON.stringify(logger)});
      const log = createLogger({ level: "info" });
      for (const line of ${JSON.stringify(fields)}) { writeRequestLine(log, line); log.info(line, "request"); }
      await flushLogger(log);`;
    // Lines written one after the other stay intact and in order, an id the caller vouches for included.
    const sane = { request_id: "Req.1_2:3@4/5+6=7-8", method: "GET", route: "/healthz", status: 200, duration_ms: 0.1 };
    const batched = `
      const { createLogger, flushLogger, writeRequestLine } = await import(${JSON.stringify(logger)});
      const log = createLogger({ level: "info" });
      const sane = ${JSON.stringify(sane)};
      for (let i = 0; i < 3; i++) writeRequestLine(log, { ...sane, status: 200 + i }, true);
      log.info("after the batch");
      await new Promise((resolve) => setImmediate(resolve));
      writeRequestLine(log, { ...sane, status: 203 }, true);
      log.info({ ...sane, status: 203 }, "request");
      await flushLogger(log);`;
    const batchChild = Bun.spawn([process.execPath, "-e", batched], { stdout: "pipe", stderr: "inherit" });
    const batchOut = (await new Response(batchChild.stdout).text()).trimEnd().split("\n");
    expect(await batchChild.exited).toBe(0);
    expect(batchOut.map((text) => JSON.parse(text).status ?? JSON.parse(text).msg)).toEqual([200, 201, 202, "after the batch", 203, 203]);
    // An inbound id the request state admits (request-state.ts) is written unescaped, as pino writes it.
    expect(batchOut[4]!.replace(/"time":"[^"]*"/, "")).toBe(batchOut[5]!.replace(/"time":"[^"]*"/, ""));
    expect(JSON.parse(batchOut[4]!)).toMatchObject({ msg: "request", ...sane, status: 203 });
    const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "inherit" });
    const out = await new Response(child.stdout).text();
    expect(await child.exited).toBe(0);
    const lines = out.trimEnd().split("\n").map((text) => text.replace(/"time":"[^"]*"/, '"time":"T"'));
    expect(lines).toHaveLength(fields.length * 2);
    for (let i = 0; i < fields.length; i++) {
      expect(lines[2 * i]).toBe(lines[2 * i + 1]!);
      expect(JSON.parse(lines[2 * i]!)).toMatchObject({ level: "info", service: "messaging", msg: "request", ...fields[i] });
    }
  });
});
