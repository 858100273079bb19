import pino, { type Logger } from "pino";

export type { Logger };

/**
 * Everything a log line must never carry in clear: credentials, signatures, message bodies and addresses.
 * Configured once here so no caller has to remember it.
 */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "req.headers['x-messaging-signature']",
  "req.headers['x-api-key']",
  "headers.authorization",
  "headers.cookie",
  "*.password",
  "*.secret",
  "*.token",
  "*.apiKey",
  "*.credentials",
  "*.databaseUrl",
  "body",
  "*.body",
  "from",
  "to",
  "*.from",
  "*.to",
  "attachments",
  "*.attachments",
];

export interface LoggerOptions {
  level: string;
  /** Where lines go; stdout (fd 1) unless a test captures them. */
  destination?: pino.DestinationStream;
}

/**
 * JSON lines on stdout through an asynchronous buffered writer, so the hot path never waits on a write;
 * call `flushLogger` before the process exits.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 });
  return pino(
    {
      level: options.level,
      base: { service: "messaging" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    },
    destination,
  );
}

/** Writes out whatever the asynchronous writer still holds. */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // Nothing buffered, or the stream is already closed.
  }
}
