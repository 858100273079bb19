/**
 * A seeded generator of malformed and hostile requests across every route, for the hostile-input suite.
 * The same seed gives the same requests, in the same order, so a failure is replayed by its seed.
 *
 *   const cases = hostileRequests(seed, 2000);
 *   for (const c of cases) c.raw ? await rawHttp(port, c.raw) : await fetch(url + c.path, { method: c.method, ... });
 */

/** mulberry32: a tiny deterministic PRNG; good enough to pick cases, not for anything secret. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface HostileRequest {
  /** Category and detail, printed when the case fails. */
  name: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Bytes (latin1) sent over a raw socket instead of fetch: odd methods, duplicate headers, broken framing. */
  raw?: string;
  /**
   * The runtime (Bun) may answer this one before any of our code runs (broken framing, a method outside its
   * table): a bare 400/413/431 or a closed connection is allowed. Anything our code answers is still checked.
   */
  runtimeMayAnswer?: boolean;
}

type Rng = () => number;
type Json = Record<string, unknown>;

interface WriteRoute {
  method: "POST" | "PUT";
  path: string;
  valid(rng: Rng): Json;
}

const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
const int = (rng: Rng, min: number, max: number) => min + Math.floor(rng() * (max - min + 1));
const digits = (rng: Rng, n: number) => Array.from({ length: n }, () => int(rng, 0, 9)).join("");
const phone = (rng: Rng) => `+1201${digits(rng, 7)}`;
const email = (rng: Rng) => `u${digits(rng, 6)}@example.com`;
const TS = "2024-11-01T14:00:00Z";

const WRITE_ROUTES: WriteRoute[] = [
  { method: "POST", path: "/api/messages/sms", valid: (r) => ({ from: phone(r), to: phone(r), type: "sms", body: "hi", attachments: null, timestamp: TS }) },
  { method: "POST", path: "/api/messages/email", valid: (r) => ({ from: email(r), to: email(r), body: "<p>hi</p>", attachments: [], timestamp: TS }) },
  {
    method: "POST",
    path: "/api/webhooks/sms",
    valid: (r) => ({ from: phone(r), to: phone(r), type: "mms", messaging_provider_id: `p-${digits(r, 9)}`, body: "hi", attachments: ["https://cdn.example.com/a.png"], timestamp: TS }),
  },
  { method: "POST", path: "/api/webhooks/email", valid: (r) => ({ from: email(r), to: email(r), xillio_id: `x-${digits(r, 9)}`, body: "hi", attachments: null, timestamp: TS }) },
  { method: "POST", path: "/api/provider/mock/inbound", valid: (r) => ({ channel: pick(r, ["sms", "email"]), from: phone(r), to: phone(r), body: "hi", timestamp: TS }) },
  { method: "PUT", path: "/api/provider/mock/config", valid: () => ({ timeout_pct: 0, error_pct: 0, ratelimit_pct: 0, seed: null }) },
  { method: "POST", path: "/api/provider/mock/reports", valid: (r) => ({ message_id: String(int(r, 1, 50)), status: pick(r, ["delivered", "undelivered", "failed"]) }) },
];

const READ_PATHS = [
  "/api/conversations",
  "/api/conversations/1/messages",
  "/api/messages/1",
  "/api/provider/mock/config",
  "/healthz",
  "/readyz",
  "/metrics",
  "/docs",
  "/docs/assets/scalar.js",
  "/openapi.json",
];

const ALL_PATHS = [...READ_PATHS, ...WRITE_ROUTES.map((r) => r.path)];
const JSON_HEADERS = { "content-type": "application/json" };

/** A valid body's JSON text with one field's value replaced by raw JSON text (which may be anything). */
function withField(body: Json, field: string, rawValue: string): string {
  const marker = `__hostile_${field}__`;
  return JSON.stringify({ ...body, [field]: marker }).replace(JSON.stringify(marker), rawValue);
}

function writeCase(rng: Rng, name: string, body: (route: WriteRoute, valid: Json, field: string) => string): HostileRequest {
  const route = pick(rng, WRITE_ROUTES);
  const valid = route.valid(rng);
  const field = pick(rng, Object.keys(valid));
  return { name: `${name} on ${route.method} ${route.path} (${field})`, method: route.method, path: route.path, headers: { ...JSON_HEADERS }, body: body(route, valid, field) };
}

const SPECIAL = `{}[]",:\\`;

type Maker = (rng: Rng) => HostileRequest;

// Big strings: about 1 MB in UTF-8 (over the limit) or 100 KB (under it), in one-, two- and four-byte characters.
// Uploading megabytes is the slow part of the storm, so this maker takes half as many turns as the others.
const bigString: Maker = (rng) =>
  writeCase(rng, "big string", (_r, valid, field) => {
    const [char, bytes] = pick(rng, [["x", 1], ["é", 2], ["😀", 4]] as const);
    return withField(valid, field, `"${char.repeat((rng() < 0.3 ? 1_048_576 : 100_000) / bytes)}"`);
  });

const makers: Maker[] = [
  // Broken JSON: truncated, a byte changed or inserted, garbage around it.
  (rng) =>
    writeCase(rng, "broken JSON", (_r, valid) => {
      const text = JSON.stringify(valid);
      const at = int(rng, 0, text.length - 1);
      switch (int(rng, 0, 5)) {
        case 0:
          return text.slice(0, at);
        case 1:
          return text.slice(0, at) + pick(rng, [...SPECIAL]) + text.slice(at + 1);
        case 2:
          return text.slice(0, at) + pick(rng, [...SPECIAL]) + text.slice(at);
        case 3:
          return `${text}${pick(rng, ["}", "]", ",", "garbage", "\u0000", "{}"])}`;
        case 4:
          return text.replaceAll('"', "'");
        default:
          return `\ufeff${text}`;
      }
    }),
  // Deep nesting, at the root or in a field, arrays or objects, balanced or not.
  (rng) =>
    writeCase(rng, "deep nesting", (_r, valid, field) => {
      const depth = pick(rng, [33, 64, 1000, int(rng, 33, 30_000)]);
      const [open, close] = rng() < 0.5 ? ["[", "]"] : ['{"a":', "}"];
      const inner = open === "[" ? "" : "1";
      const nested = open.repeat(depth) + inner + close.repeat(rng() < 0.8 ? depth : int(rng, 0, depth));
      return rng() < 0.3 ? nested : withField(valid, field, nested);
    }),
  // Huge, tiny and odd numbers wherever a value goes.
  (rng) =>
    writeCase(rng, "huge number", (_r, valid, field) =>
      withField(valid, field, pick(rng, ["1e400", "-1e400", "123456789012345678901234567890", "-0", "1e-400", "9007199254740993", "1.7976931348623157e309", digits(rng, 500)])),
    ),
  // Wrong types.
  (rng) =>
    writeCase(rng, "wrong type", (_r, valid, field) =>
      withField(valid, field, pick(rng, ["null", "true", "42", "-1.5", "[]", "{}", '[1,"a"]', '{"a":{}}', '""', '"   "', '["https://x.example.com/a.png",{}]'])),
    ),
  // NUL and control characters, escaped (valid JSON) or raw (invalid JSON).
  (rng) =>
    writeCase(rng, "control characters", (_r, valid, field) => {
      const escaped = pick(rng, ["\\u0000", "\\u0007", "\\u001f", "\\u007f", "\\u2028", "\\u0000\\u0000\\u0000", "a\\u0000b"]);
      const raw = pick(rng, ["\u0000", "\u0001", "\u001f", "\n", "\t"]);
      return withField(valid, field, rng() < 0.7 ? `"${escaped}"` : `"x${raw}y"`);
    }),
  // Values at and past the edges of the field rules: timestamps at the ends of 0001–9999, overlong addresses.
  (rng) =>
    writeCase(rng, "edge value", (_r, valid, field) => {
      const value = pick(rng, [
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:60Z",
        "+275760-09-13T00:00:00Z",
        `${"a".repeat(3000)}@example.com`,
        `${"a".repeat(65)}@example.com`,
        `+1${"-".repeat(5000)}2015550100`,
        "+".repeat(20),
        "https://".padEnd(3000, "a"),
      ]);
      return withField(valid, pick(rng, [field, "timestamp", "from", "to"]), JSON.stringify(value));
    }),
  // Lone surrogates (and a valid pair now and then).
  (rng) =>
    writeCase(rng, "lone surrogate", (_r, valid, field) =>
      withField(valid, field, `"${pick(rng, ["\\ud800", "\\udfff", "a\\ud83d", "\\ude00\\ud83d", "\\uD800\\uD800", "\\ud83d\\ude00", "\\ud83d\\u0041"])}"`),
    ),
  bigString,
  // Headers: content type, accept, idempotency key, request id, authorization, forwarded-for.
  (rng) => {
    const route = pick(rng, WRITE_ROUTES);
    const [name, value] = pick(rng, [
      ["content-type", pick(rng, ["text/plain", "application/json-patch+json", "multipart/form-data; boundary=x", "application/json; charset=utf-16", "", "application/jsonx", "json"])],
      ["accept", pick(rng, ["text/html", "application/json;q=0", ";;;,,,", "*/*;q=abc", "application/xml, text/*;q=0.5"])],
      ["idempotency-key", pick(rng, ["", " ", "k".repeat(300), "spaces in key", "\u00e9t\u00e9", `key-${digits(rng, 8)}`])],
      ["x-request-id", pick(rng, ["", "a".repeat(500), "<script>", "id with spaces", "../../etc/passwd"])],
      ["authorization", pick(rng, ["Bearer", "Bearer " + "a".repeat(5000), "Basic Zm9vOmJhcg==", "garbage"])],
      ["x-forwarded-for", pick(rng, ["not-an-ip", "1.2.3.4, , ,", "::1", "999.999.999.999"])],
    ] as const);
    const headers: Record<string, string> = { ...JSON_HEADERS, [name]: value };
    if (name === "content-type" && value === "") delete headers["content-type"];
    return { name: `header ${name}: ${value.slice(0, 40)} on ${route.path}`, method: route.method, path: route.path, headers, body: JSON.stringify(route.valid(rng)) };
  },
  // Hostile query strings on the list routes (and on routes that take none).
  (rng) => {
    const path = pick(rng, ["/api/conversations", "/api/conversations/1/messages", "/api/conversations", pick(rng, READ_PATHS)]);
    const key = pick(rng, ["page", "pageSize", "page_size", "cursor"]);
    const value =
      key === "cursor"
        ? pick(rng, ["garbage", "e30.AAAAAAAAAAAAAAAAAAAAAA", "x".repeat(5000), "%00.%ff", "a.b.c", ".", "", "WyJjIl0.", "abc&page=1", "abc&cursor=def"])
        : pick(rng, ["9999999999", digits(rng, 400), "-99999999999999", "1.5", "abc", "%00", "%F0%9F%98%80", "1e3", "0x10", "", "%ff", "1&page=2"]);
    return { name: `query ${key}=${value.slice(0, 30)} on ${path}`, method: "GET", path: `${path}?${key}=${value}`, headers: {} };
  },
  // Hostile paths: odd ids, encodings, lengths.
  (rng) => {
    const id = pick(rng, ["99999999999999999999", "9223372036854775808", "-1", "0", "abc", "%00", "1%2F2", "%2e%2e", "x".repeat(4000), "%F0%9F%98%80", "1.0", " 1"]);
    const path = pick(rng, [`/api/messages/${id}`, `/api/conversations/${id}/messages`, `/api/${id}`, `/${id}`, `/api/messages/sms/${id}`, "//healthz", "/healthz/", "/api/conversations//messages"]);
    return { name: `path ${path.slice(0, 60)}`, method: "GET", path, headers: {} };
  },
  // Methods fetch can send, on every route.
  (rng) => {
    const method = pick(rng, ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
    const path = pick(rng, ALL_PATHS);
    const body = method === "GET" || method === "HEAD" || method === "OPTIONS" ? undefined : "{}";
    return { name: `method ${method} ${path}`, method, path, headers: body ? { ...JSON_HEADERS } : {}, body };
  },
  // Over a raw socket: odd and lower-case methods, CONNECT targets, bodies on GET, duplicate headers.
  (rng) => {
    const path = pick(rng, ALL_PATHS);
    const request = (line: string, headers: string[], body = "") =>
      `${line}\r\nHost: ${pick(rng, ["x", "localhost", "127.0.0.1"])}\r\nConnection: close\r\n${headers.map((h) => `${h}\r\n`).join("")}Content-Length: ${Buffer.byteLength(body, "latin1")}\r\n\r\n${body}`;
    switch (int(rng, 0, 4)) {
      case 0: {
        const method = pick(rng, ["FOO", "get", "PoSt", "BREW", "GETS", "delete"]);
        return { name: `raw unknown method ${method} ${path}`, method, path, headers: {}, raw: request(`${method} ${path} HTTP/1.1`, []), runtimeMayAnswer: true };
      }
      case 1: {
        const method = pick(rng, ["PROPFIND", "TRACE", "MKCOL", "PURGE", "LOCK", "M-SEARCH", "REPORT", "CONNECT"]);
        return { name: `raw method ${method} ${path}`, method, path, headers: {}, raw: request(`${method} ${path} HTTP/1.1`, []) };
      }
      case 2: {
        const target = pick(rng, ["user@example.com:443", "127.0.0.1:5432", "example.com:80", "[::1]:22"]);
        return { name: `raw CONNECT ${target}`, method: "CONNECT", path: target, headers: {}, raw: request(`CONNECT ${target} HTTP/1.1`, []) };
      }
      case 3: {
        const readPath = pick(rng, READ_PATHS.filter((p) => p !== "/docs/assets/scalar.js")); // megabytes; fetched elsewhere
        const body = pick(rng, ['{"page": 2}', "[[[[[[", "x".repeat(5000), "\u0000\u0001"]);
        return { name: `raw GET with a body ${readPath}`, method: "GET", path: readPath, headers: {}, raw: request(`GET ${readPath} HTTP/1.1`, ["Content-Type: application/json"], body) };
      }
      default: {
        const route = pick(rng, WRITE_ROUTES);
        const duplicate = pick(rng, [
          ["Content-Type: application/json", "Content-Type: text/plain"],
          ["Idempotency-Key: a", "Idempotency-Key: b"],
          ["X-Request-Id: one", "X-Request-Id: two"],
          ["Accept: application/json", "Accept: text/plain"],
          ["Authorization: Bearer a", "Authorization: Bearer b"],
          ["Content-Type: application/json", "Content-Type: application/json"],
        ]);
        return {
          name: `raw duplicate ${duplicate[0]!.split(":")[0]} on ${route.path}`,
          method: route.method,
          path: route.path,
          headers: {},
          raw: request(`${route.method} ${route.path} HTTP/1.1`, duplicate, JSON.stringify(route.valid(rng))),
        };
      }
    }
  },
  // Over a raw socket: broken framing the runtime answers (or closes) before our code runs.
  (rng) => {
    const route = pick(rng, WRITE_ROUTES);
    const line = `${route.method} ${route.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n`;
    const framing = pick(rng, [
      ["duplicate Content-Length", `${line}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}`],
      ["negative Content-Length", `${line}Content-Length: -1\r\n\r\n{}`],
      ["non-numeric Content-Length", `${line}Content-Length: 1 2\r\n\r\n{}`],
      ["bad chunk size", `${line}Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`],
      ["overflowing chunk size", `${line}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n`],
      ["Content-Length with chunked", `${line}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`],
      ["a header without a colon", `${line}No-Colon-Here\r\nContent-Length: 2\r\n\r\n{}`],
      ["a NUL in a header", `${line}X-Thing: a\u0000b\r\nContent-Length: 2\r\n\r\n{}`],
      ["no Host", `${route.method} ${route.path} HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}`],
      ["HTTP/2.0 on a text line", `${route.method} ${route.path} HTTP/2.0\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`],
      ["a 70 KB target", `GET /${"a".repeat(70_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
      ["an asterisk target", "GET * HTTP/1.1\r\nHost: x\r\n\r\n"],
    ] as const);
    return { name: `raw framing: ${framing[0]} on ${route.path}`, method: route.method, path: route.path, headers: {}, raw: framing[1], runtimeMayAnswer: true };
  },
  signatureAttack,
];

const SIGNED_ROUTES = WRITE_ROUTES.filter((r) => r.path.startsWith("/api/webhooks/") || r.path === "/api/provider/mock/inbound");
const hex = (rng: Rng, length: number) => Array.from({ length }, () => "0123456789abcdef"[int(rng, 0, 15)]).join("");

/**
 * Forged, stale, malformed and oversized `X-Messaging-Signature` headers (SPEC §8) on the signed routes. None is a
 * correct signature: where secrets are configured every one must be a 401 envelope; where none are, the header is
 * ignored. Timestamps are fixed so a seed replays exactly (a fresh forgery is tried in test/security/).
 */
export function signatureAttack(rng: Rng): HostileRequest {
  const route = pick(rng, SIGNED_ROUTES);
  const body = JSON.stringify(route.valid(rng));
  const mac = hex(rng, 64);
  const [kind, value] = pick(rng, [
    ["absent", undefined],
    ["empty", ""],
    ["garbage", pick(rng, ["garbage", "=", ",,,", "t=", "v1=", "t==1,v1==a", "%00", "t=1;v1=2"])],
    ["no v1", `t=${pick(rng, ["1700000000", "0", digits(rng, 10)])}`],
    ["no t", `v1=${mac}`],
    ["stale", `t=1700000000,v1=${mac}`],
    ["far future", `t=9999999999,v1=${mac}`],
    ["absurd t", `t=${pick(rng, ["-1", "1e9", "0x65", "1700000000.5", digits(rng, 40), " "])},v1=${mac}`],
    ["bad hex", `t=1700000000,v1=${pick(rng, [mac.slice(1), `${mac}0`, mac.replace(/./, "g"), mac.slice(0, 32), "", "é".repeat(64)])}`],
    ["only v0", `t=1700000000,v0=${mac}`],
    ["many v1", ["t=1700000000", ...Array.from({ length: int(rng, 11, 60) }, () => `v1=${hex(rng, 64)}`)].join(",")],
    ["oversized", `t=1700000000,v1=${mac},v0=${"a".repeat(int(rng, 4097, 8000))}`],
  ] as const);
  const headers: Record<string, string> = { ...JSON_HEADERS };
  if (value !== undefined) headers["x-messaging-signature"] = value;
  return { name: `signature ${kind} on ${route.path}`, method: route.method, path: route.path, headers, body };
}

/** `count` signature attacks for `seed`, alone (for a suite run with webhook secrets configured). */
export function signatureAttacks(seed: number, count: number): HostileRequest[] {
  const rng = seededRandom(seed);
  return Array.from({ length: count }, () => signatureAttack(rng));
}

/** Every maker twice a round, the big strings once. */
const turns = makers.flatMap((maker) => (maker === bigString ? [maker] : [maker, maker]));

/** `count` hostile requests for `seed`; every maker (and so every kind of hostility) takes turns. */
export function hostileRequests(seed: number, count: number): HostileRequest[] {
  const rng = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => turns[i % turns.length]!(rng));
}

/** The valid sends used after the storm to prove the service is still healthy. */
export function validSms(seed: number): Json {
  return WRITE_ROUTES[0]!.valid(seededRandom(seed));
}
