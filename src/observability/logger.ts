import pino, { type Logger } from "pino";

export type { Logger };

/**
 * Keys whose values a log line must never carry in clear: credentials, signatures, message bodies, addresses and
 * a failed query's parameters (which are bodies and addresses). Matched at any depth, inside arrays, and without
 * regard to letter case, `_` or `-` (`API_KEY`, `Body`, `x-api-key`). Configured once here so no caller has to
 * remember it.
 */
export const REDACTED_KEYS = new Set([
  "password",
  "secret",
  "token",
  "apiKey",
  "api_key",
  "credentials",
  "databaseUrl",
  "body",
  "from",
  "to",
  "attachments",
  "params",
]);
/** Header names; redacted as keys anywhere, so in `headers` objects and in a logged `Headers` alike. */
export const REDACTED_HEADERS = new Set(["authorization", "cookie", "x-messaging-signature", "x-api-key"]);
/** Words that make any key containing them sensitive: `webhookSecret`, `accessToken`, `proxy-authorization`. */
const SENSITIVE_WORDS = ["password", "secret", "token", "apikey", "credential", "authorization", "cookie", "signature"];
const CENSOR = "[redacted]";
/**
 * How deep the walk goes. Past it a value is replaced, not written unexamined: a cycle (which would otherwise
 * never end) or a structure this deep is cut there rather than risk what lies below.
 */
const MAX_DEPTH = 12;
const TOO_DEEP = "[too deep]";

const normalizeKey = (key: string) => key.toLowerCase().replaceAll("_", "").replaceAll("-", "");
const SENSITIVE_KEYS = new Set([...REDACTED_KEYS, ...REDACTED_HEADERS].map(normalizeKey));

/**
 * Verdicts by key, so the hot path (the same few keys on every request line) costs one map lookup per key and
 * allocates nothing. Bounded, since logged objects may carry keys chosen by a client; past the bound a key is
 * judged afresh each time.
 */
const verdicts = new Map<string, boolean>();
const MAX_VERDICTS = 4096;

function isSensitiveKey(key: string): boolean {
  let verdict = verdicts.get(key);
  if (verdict === undefined) {
    const normalized = normalizeKey(key);
    verdict = SENSITIVE_KEYS.has(normalized) || SENSITIVE_WORDS.some((word) => normalized.includes(word));
    if (verdicts.size < MAX_VERDICTS) verdicts.set(key, verdict);
  }
  return verdict;
}

/**
 * The value as it will be serialised, with sensitive keys censored at any depth. Copies only what it changes, so
 * a line without anything to hide is written as given. Primitives (strings included) pass unexamined. Errors
 * are serialised as the `err` key is (message, stack, their own fields, redacted). An object with `toJSON` is
 * judged by what that returns (a `Headers` would otherwise write `authorization` in clear). Maps and Sets pass
 * as they are: JSON writes them as `{}`, so nothing in them reaches the line. Other class instances are walked
 * like plain objects, since JSON writes their fields.
 */
function redactValue(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_DEPTH) return TOO_DEEP;
  if (Array.isArray(value)) return redactArray(value, depth + 1);
  if (value instanceof Error) return serializeError(value, depth + 1);
  if (value instanceof Map || value instanceof Set) return value;
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return redactValue(toJSON.call(value), depth + 1);
  return redactFields(value as Record<string, unknown>, depth + 1);
}

function redactArray(array: unknown[], depth: number): unknown[] {
  let out: unknown[] | undefined;
  for (let i = 0; i < array.length; i++) {
    const value = array[i];
    const next = redactValue(value, depth);
    if (next !== value) (out ??= array.slice())[i] = next;
  }
  return out ?? array;
}

/** Own enumerable fields, as JSON writes them; for-in rather than Object.keys so a flat line allocates nothing. */
function redactFields(obj: Record<string, unknown>, depth: number, keepErr = false): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key in obj) {
    if (!Object.hasOwn(obj, key)) continue;
    const value = obj[key];
    let next: unknown;
    if (isSensitiveKey(key)) next = CENSOR;
    else if (keepErr && key === "err" && value instanceof Error) next = value; // pino's `err` serializer takes it
    else next = redactValue(value, depth);
    if (next !== value) (out ??= { ...obj })[key] = next;
  }
  return out ?? obj;
}

/**
 * pino's log formatter. On the request line (a flat object of known keys) it costs a map lookup and a type
 * check per key; nested objects and arrays are walked to any depth. pino's path-based redaction with
 * wildcards (`*.body`) cost three times as much per line and still only reached the depths it was told.
 */
export const redactLogObject = (obj: Record<string, unknown>) => redactFields(obj, 0, true);

export interface LoggerOptions {
  level: string;
  /** Where lines go; stdout (fd 1) unless a test captures them. */
  destination?: pino.DestinationStream;
}

/**
 * pino's error serializer, redacted like any other value, minus the query parameters drizzle puts in a failed
 * query's error: its message and stack read "Failed query: …\nparams: <every parameter>" (pino appends the
 * messages and stacks of causes, so a failed query anywhere in the chain counts) and it carries them again in
 * `params`, so logging such an error would write message bodies and addresses in clear. The query text
 * (placeholders only) stays. Message and stack are otherwise written as they are.
 */
function serializeError(error: unknown, depth = 0): unknown {
  const out = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown>;
  if (!out || typeof out !== "object") return out;
  for (const listed of paramListings(error)) {
    for (const field of ["message", "stack"] as const) {
      if (typeof out[field] === "string") out[field] = (out[field] as string).replaceAll(listed, "params: [redacted]");
    }
  }
  return redactFields(out, depth);
}

/** The "params: …" text of each failed query along the cause chain (bounded, in case causes loop). */
function paramListings(error: unknown): string[] {
  const listings: string[] = [];
  let current = error as { params?: unknown; cause?: unknown } | null | undefined;
  for (let i = 0; i < MAX_DEPTH && current !== null && typeof current === "object"; i++) {
    if (current.params !== undefined) listings.push(`params: ${String(current.params)}`);
    current = current.cause as typeof current;
  }
  return listings;
}

let timeMs = Number.NaN;
let timeField = "";
/** The request line up to its request id's opening quote, for the millisecond of `timeField`. */
let requestLineHead = "";

/**
 * pino's `isoTime`, formatted once per millisecond: a busy server writes dozens of lines in one, and
 * `toISOString` was a tenth of the cost of a request line.
 */
function isoTime(): string {
  const now = Date.now();
  if (now !== timeMs) {
    timeMs = now;
    timeField = `,"time":"${new Date(now).toISOString()}"`;
    requestLineHead = `{"level":"info"${timeField},"service":"messaging","request_id":"`;
  }
  return timeField;
}

/** The fields of the one line every request writes (http/request-context.ts). */
export interface RequestLine {
  request_id: string;
  method: string;
  route: string;
  status: number;
  duration_ms: number;
}

/**
 * Writes the per-request line, byte for byte what `logger.info(fields, "request")` writes, without pino's
 * generic path (its redaction walk, its serialisation of an arbitrary object): this line is written for every
 * request and its shape is fixed. Nothing in it needs redacting: the request id is our UUID or a sane inbound
 * one (request-context.ts), the method a token, the route a pattern (never the raw path), the rest numbers;
 * strings are JSON-escaped all the same. Callers check `logger.isLevelEnabled("info")` first.
 *
 * On stdout the line goes to the native writer in pieces, none of them built for this request but the duration:
 * the head changes once a millisecond, the method-route-status part is kept per route. Built as one string it
 * cost twice as much (a rope of a dozen parts flattened, three JSON.stringify); joining a turn's lines into one
 * write cost as much as the pieces (the flattening moved into the write). `idIsJsonText` says the caller knows
 * the id needs no escaping (request-state.ts admits only such ids): the check of every other id was 4% of the
 * JavaScript time of a /healthz request.
 */
export function writeRequestLine(logger: Logger, line: RequestLine, idIsJsonText = false): void {
  const stream = (logger as unknown as Record<symbol, { write(chunk: string): unknown }>)[pino.symbols.streamSym];
  isoTime();
  // The id between its quotes: as it is when it is JSON text already, else JSON-escaped.
  const id = idIsJsonText || PLAIN_JSON_TEXT.test(line.request_id) ? line.request_id : JSON.stringify(line.request_id).slice(1, -1);
  const middle = requestLineMiddle(line.method, line.route, line.status);
  if (stream instanceof NativeLineWriter) {
    stream.write(requestLineHead);
    stream.write(id);
    stream.write(middle);
    stream.write(String(line.duration_ms));
    stream.write(REQUEST_LINE_TAIL);
    return;
  }
  stream!.write(requestLineHead + id + middle + String(line.duration_ms) + REQUEST_LINE_TAIL);
}

/** Text that JSON writes as it is between quotes: printable ASCII but `"` and `\`. */
const PLAIN_JSON_TEXT = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const REQUEST_LINE_TAIL = `,"msg":"request"}\n`;

/** `","method":…,"route":…,"status":…,"duration_ms":` by method, route pattern and status (bounded: methods are the client's). */
const middles = new Map<string, Map<string, Map<number, string>>>();
let middleCount = 0;
const MAX_MIDDLES = 4096;

function requestLineMiddle(method: string, route: string, status: number): string {
  const byRoute = middles.get(method);
  const byStatus = byRoute?.get(route);
  const cached = byStatus?.get(status);
  if (cached !== undefined) return cached;
  const middle = `","method":${JSON.stringify(method)},"route":${JSON.stringify(route)},"status":${status},"duration_ms":`;
  if (middleCount < MAX_MIDDLES) {
    middleCount += 1;
    if (byStatus) byStatus.set(status, middle);
    else if (byRoute) byRoute.set(route, new Map([[status, middle]]));
    else middles.set(method, new Map([[route, new Map([[status, middle]])]]));
  }
  return middle;
}

/** Longest a line waits in the buffer of the stdout writer on a quiet server. */
const FLUSH_INTERVAL_MS = 1000;

/**
 * JSON lines on stdout through an asynchronous buffered writer, so the hot path never waits on a write;
 * call `flushLogger` before the process exits.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? bufferedStdout();
  return pino(
    {
      level: options.level,
      base: { service: "messaging" },
      timestamp: isoTime,
      formatters: { level: (label) => ({ level: label }), log: redactLogObject },
      serializers: { err: serializeError },
    },
    destination,
  );
}

/**
 * stdout through Bun's native buffered writer (a FileSink): a line is copied into its buffer in native code, with
 * no Buffer or string allocated per line, and written out once the buffer holds CHUNK_BYTES, at least every
 * FLUSH_INTERVAL_MS on a quiet server, and at exit. On a pipe that is not being read the sink keeps the lines and
 * writes them when it can; the server never waits for it.
 *
 * It replaced pino's sonic-boom behind a line buffer: at LOG_LEVEL=info /healthz spent a quarter of its CPU on
 * that path, most of it in collecting the 16 KiB chunks and Buffer copies it allocated (measured with
 * `bun --cpu-prof` and BUN_JSC_logGC; see docs/architecture.md).
 */
function bufferedStdout(): pino.DestinationStream {
  return new NativeLineWriter(1);
}

/** How many bytes of lines the writer gathers before it writes them in one go. */
const CHUNK_BYTES = 16 * 1024;

class NativeLineWriter {
  private readonly sink: import("bun").FileSink;
  /** Whether anything was written since the last flush. */
  private pending = false;

  constructor(fd: number) {
    this.sink = Bun.file(fd).writer({ highWaterMark: CHUNK_BYTES });
    // A pipe does not keep the process alive: it exits when its work is done, flushing on the way out.
    this.sink.unref();
    setInterval(() => this.flush(), FLUSH_INTERVAL_MS).unref();
    process.once("exit", () => {
      try {
        this.flushSync();
      } catch {
        // stdout closed or not writable: nothing more can be done while exiting
      }
    });
  }

  write(line: string): void {
    this.sink.write(line);
    this.pending = true;
  }

  /** Writes out what is gathered; `done` runs once it is written (or could not be). */
  flush(done?: (err?: Error) => void): void {
    if (!this.pending) {
      done?.();
      return;
    }
    this.pending = false;
    let written: number | Promise<number>;
    try {
      written = this.sink.flush();
    } catch (err) {
      done?.(err as Error);
      return;
    }
    if (typeof written === "number") done?.();
    else written.then(() => done?.(), (err: Error) => done?.(err));
  }

  /** As much as the file descriptor takes now; a pipe that is full keeps the rest in the sink. */
  flushSync(): void {
    this.pending = false;
    this.sink.flush();
  }
}

/**
 * Writes out everything the asynchronous writer holds; call it before the process exits. Waits for the write
 * (a second at most, so a stuck stdout cannot hold up an exit), then writes whatever was logged meanwhile
 * synchronously.
 */
export async function flushLogger(logger: Logger): Promise<void> {
  await new Promise<void>((resolve) => {
    const deadline = setTimeout(resolve, 1000);
    const done = () => {
      clearTimeout(deadline);
      resolve();
    };
    try {
      logger.flush(done);
    } catch {
      done(); // the stream is already closed
    }
  });
  const stream = (logger as unknown as Record<symbol, { flushSync?: () => void }>)[pino.symbols.streamSym];
  try {
    stream?.flushSync?.();
  } catch {
    // closed, or still writing after the deadline: nothing more can be done before exiting
  }
}
