import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

/**
 * src/security/egress.ts is the only way out: no other file of the service (src/, cli/) may open an
 * outbound connection. This test reads every source file for the ways one is opened and fails when a new
 * one appears anywhere else. A new exception needs a line below saying why it is not egress.
 *
 * Outside its reach, on purpose: the PostgreSQL client (postgres.js, src/db/client.ts) connects to the
 * DATABASE_URL the operator configured, which is not a destination anyone else can choose; its sockets
 * are the one exception listed. PGlite runs in-process and opens nothing. The selftest's client
 * (cli/selftest/client.ts) is the other: the operator's own tool, aimed at the URL the operator gives it.
 */

const ROOT = join(import.meta.dir, "..", "..");
const GUARD = "src/security/egress.ts";

const NETWORK_MODULES = "(?:node:)?(?:net|tls|http|https|http2|dgram)";
const HTTP_CLIENTS = "(?:axios|undici|node-fetch|got|ky|nodemailer|ws)";

/** Each way to open a connection, by name. */
const RULES: Record<string, RegExp> = {
  "fetch call": /\bfetch\s*\(/,
  "network module import": new RegExp(`(?:from\\s+|import\\s*\\(\\s*|require\\s*\\(\\s*)["']${NETWORK_MODULES}["']`),
  "HTTP client package": new RegExp(`(?:from\\s+|import\\s*\\(\\s*|require\\s*\\(\\s*)["']${HTTP_CLIENTS}["']`),
  "socket connect": /\b(?:net|tls)\.connect\b|\bcreateConnection\b|\bBun\.connect\b|\bBun\.udpSocket\b|\bnew\s+(?:net\.)?Socket\b/,
  "browser-style client": /\bnew\s+(?:WebSocket|EventSource|XMLHttpRequest)\b/,
};

/** file → rules it may break, and why that is not outbound traffic. */
const EXCEPTIONS: Record<string, Record<string, string>> = {
  "src/db/statement-deadline.ts": {
    "network module import": "the TCP sockets postgres.js uses for the operator's DATABASE_URL",
    "socket connect": "connects to the operator's DATABASE_URL host (postgres.js `socket` option), not to a URL from outside",
  },
  "src/security/address-class.ts": {
    "network module import": "imports isIP from node:net to parse addresses; opens nothing",
  },
  "src/providers/smtp/adapter.ts": {
    "HTTP client package":
      "nodemailer speaks SMTP, which fetch cannot; the relay's name is resolved and every address checked by smtpHostCheck with the egress guard's address rules (security/address-class.ts), and nodemailer is given the checked IP",
  },
  "cli/selftest/client.ts": {
    "fetch call":
      "`messaging selftest --target URL` is an HTTP client an operator runs against a deployment they name on the command line; it is not the service's own egress (no provider call, nothing a request can steer), so the guard's allowlist and private-range refusals (which would refuse the usual loopback or internal target) do not apply",
  },
  "src/domain/proxy-range.ts": {
    "network module import": "imports isIP from node:net to read MESSAGING_TRUSTED_PROXIES entries; opens nothing",
  },
  "src/diagnostics/redis-check.ts": {
    "network module import":
      "`messaging check` opens one TCP connection to the operator's MESSAGING_REDIS_URL host and port, to tell 'nothing listens there' from 'the server closed the connection' (Bun's Redis client says 'Connection closed' for both); nothing from outside steers it",
  },
  "src/security/client-address.ts": {
    "network module import": "imports BlockList and isIP from node:net to match client addresses against trusted proxies; opens nothing",
  },
};

/** Lines that are code: comments may talk about fetch() freely. */
const codeLines = (source: string) =>
  source.split("\n").map((line, i) => ({ line, number: i + 1 })).filter(({ line }) => !/^\s*(?:\/\/|\/\*|\*)/.test(line));

/** A `fetch(req) {` method (a server's request handler) is a definition, not a call. */
const isHandlerDefinition = (line: string) => /^\s*(?:async\s+)?fetch\s*\([^)]*\)\s*(?::[^{]*)?\{/.test(line);

function violations(file: string, source: string): string[] {
  const found: string[] = [];
  for (const { line, number } of codeLines(source)) {
    for (const [rule, pattern] of Object.entries(RULES)) {
      if (!pattern.test(line)) continue;
      if (rule === "fetch call" && isHandlerDefinition(line)) continue;
      found.push(`${file}:${number} ${rule}: ${line.trim()}`);
    }
  }
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: "utf8" })
    .filter((name) => /\.(?:ts|js|mjs|cjs)$/.test(name))
    .map((name) => relative(ROOT, join(ROOT, dir, name)));
}

const FILES = [...sourceFiles("src"), ...sourceFiles("cli")];

describe("src/security/egress.ts is the only way out", () => {
  test("no file of src/ or cli/ other than the guard opens a connection, apart from the listed exceptions", () => {
    const unexpected = FILES.filter((file) => file !== GUARD).flatMap((file) =>
      violations(file, readFileSync(join(ROOT, file), "utf8")).filter((v) => !excused(file, v)),
    );
    expect(unexpected).toEqual([]);
  });

  test("every listed exception is still needed (a stale one would hide a new use in that file)", () => {
    for (const [file, rules] of Object.entries(EXCEPTIONS)) {
      const found = violations(file, readFileSync(join(ROOT, file), "utf8"));
      for (const rule of Object.keys(rules)) expect(found.some((v) => ruleOf(v) === rule)).toBe(true);
    }
  });

  test("the guard itself is where fetch is called", () => {
    expect(violations(GUARD, readFileSync(join(ROOT, GUARD), "utf8")).map(ruleOf)).toContain("fetch call");
  });

  test("the scan covers the service: it sees the server, the CLI and the database code", () => {
    expect(FILES).toEqual(expect.arrayContaining(["src/app.ts", "cli/main.ts", "src/db/client.ts", GUARD]));
  });
});

describe("the scanner recognises each way out (so a pass above means something)", () => {
  test.each([
    ['const r = await fetch("https://evil.test/");', "fetch call"],
    ['const r = await globalThis.fetch(url, { method: "POST" });', "fetch call"],
    ['return Bun.fetch(url);', "fetch call"],
    ['import https from "node:https";', "network module import"],
    ['import { request } from "http";', "network module import"],
    ['const tls = await import("node:tls");', "network module import"],
    ['const net = require("net");', "network module import"],
    ['import axios from "axios";', "HTTP client package"],
    ['import { createTransport } from "nodemailer";', "HTTP client package"],
    ["const socket = await Bun.connect({ hostname, port, socket: handlers });", "socket connect"],
    ["const s = tls.connect(443, host);", "socket connect"],
    ["const s = createConnection({ host, port });", "socket connect"],
    ["const ws = new WebSocket(url);", "browser-style client"],
  ])("%s → %s", (line, rule) => {
    expect(violations("example.ts", line).map(ruleOf)).toEqual([rule]);
  });

  test.each([
    ["  fetch(req) {"],
    ["  async fetch(request: Request): Promise<Response> {"],
    ["// we never fetch( anything here"],
    [" * Providers fetch attachments themselves"],
    ['const prefetched = cache.get("fetches");'],
  ])("%s is not a way out", (line) => {
    expect(violations("example.ts", line)).toEqual([]);
  });
});

function ruleOf(violation: string): string {
  return Object.keys(RULES).find((rule) => violation.includes(` ${rule}: `))!;
}

function excused(file: string, violation: string): boolean {
  return EXCEPTIONS[file]?.[ruleOf(violation)] !== undefined;
}
