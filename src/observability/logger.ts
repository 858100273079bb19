import pino, { type Logger } from "pino";

export type { Logger };

/**
 * Keys whose values a log line must never carry in clear: credentials, signatures, message bodies and
 * addresses. Redacted wherever they appear at the top of a line's object or one level down (`{ message: { body } }`),
 * and in any `headers` object up to two levels down (`{ req: { headers: { authorization } } }`).
 * Configured once here so no caller has to remember it.
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
]);
export const REDACTED_HEADERS = new Set(["authorization", "cookie", "x-messaging-signature", "x-api-key"]);
const CENSOR = "[redacted]";

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

/** A copy of `headers` with the sensitive ones censored, or the same object when none is present. */
function redactHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const name of Object.keys(headers)) {
    if (REDACTED_HEADERS.has(name.toLowerCase())) (out ??= { ...headers })[name] = CENSOR;
  }
  return out ?? headers;
}

/** One level of redaction; `deeper` descends once more. Copies only what it changes. */
function redactLevel(obj: Record<string, unknown>, deeper: boolean): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(obj)) {
    const value = obj[key];
    let next = value;
    if (REDACTED_KEYS.has(key)) next = CENSOR;
    else if (key === "headers" && isPlainObject(value)) next = redactHeaders(value);
    else if (deeper && isPlainObject(value)) next = redactLevel(value, false);
    if (next !== value) (out ??= { ...obj })[key] = next;
  }
  return out ?? obj;
}

/**
 * pino's log formatter: a shallow walk over the few keys a line has. pino's path-based redaction with
 * wildcards (`*.body`) did the same job at three times the cost per line, which on the request log line
 * was about 40% of /healthz throughput.
 */
export const redactLogObject = (obj: Record<string, unknown>) => redactLevel(obj, true);

export interface LoggerOptions {
  level: string;
  /** Where lines go; stdout (fd 1) unless a test captures them. */
  destination?: pino.DestinationStream;
}

/**
 * pino's error serializer, minus the query parameters drizzle puts in a failed query's error: its message and
 * stack read "Failed query: …\nparams: <every parameter>" and it carries them again in `params`, so logging
 * such an error would write message bodies and addresses in clear. The query text (placeholders only) stays.
 */
function serializeError(error: unknown): unknown {
  const out = pino.stdSerializers.err(error as Error) as unknown as Record<string, unknown>;
  const params = (error as { params?: unknown } | null)?.params;
  if (!out || typeof out !== "object" || params === undefined) return out;
  const listed = `params: ${String(params)}`;
  for (const field of ["message", "stack"] as const) {
    if (typeof out[field] === "string") out[field] = (out[field] as string).replaceAll(listed, "params: [redacted]");
  }
  out.params = "[redacted]";
  return out;
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
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: redactLogObject },
      serializers: { err: serializeError },
    },
    destination,
  );
}

/**
 * The buffer only writes once it holds 4 KiB, which a quiet server may take minutes to log (its
 * "messaging listening" line sat unseen until shutdown); sonic-boom's periodic flush (an unref'd timer)
 * writes it out at least every FLUSH_INTERVAL_MS.
 */
function bufferedStdout(): pino.DestinationStream {
  return pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: FLUSH_INTERVAL_MS });
}

/**
 * Writes out everything the asynchronous writer holds; call it before the process exits.
 * Waiting for one flush is not enough: when a write is already under way, sonic-boom reports "drained" as soon
 * as that write ends and keeps lines logged meanwhile (under 4 KiB) in its buffer, which an exit then loses.
 * So: wait for the write under way (a second at most, so a stuck stdout cannot hold up an exit), then write
 * the rest synchronously.
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
