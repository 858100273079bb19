import { AppError } from "./errors.ts";

export interface BodyDeadline {
  /** How long the whole body may take to arrive, counted from when reading it starts. */
  timeoutMs: number;
  /** Aborted when the shutdown timeout has run out: a body still arriving then is no longer waited for. */
  closing: AbortSignal;
  /** Called when the body is given up on, so the caller can close the connection the client is still writing to. */
  abandon(): void;
}

/**
 * Bounds the reading of a request body. Bun's idle timeout restarts at every byte, so a client that trickles a
 * body (or declares more bytes than it sends, or asks `Expect: 100-continue` and sends nothing) would otherwise
 * hold its request, and a graceful shutdown, open for as long as it likes. Past the deadline the answer is 408;
 * once shutdown stops waiting it is 503; either way the connection is then closed, since the rest of the body
 * may still be on its way.
 */
export function readWithinDeadline<T>(read: Promise<T>, deadline: BodyDeadline): Promise<T> {
  const watch = watchOf(deadline.closing);
  return new Promise<T>((resolve, reject) => {
    const reading: Reading = {
      due: performance.now() + deadline.timeoutMs,
      timeoutMs: deadline.timeoutMs,
      giveUp: (error) => {
        deadline.abandon();
        reject(error);
      },
    };
    watch.add(reading);
    // A read given up on still settles later (it rejects when the connection closes): nobody waits for it then.
    read.then(
      (value) => {
        watch.delete(reading);
        resolve(value);
      },
      (err: unknown) => {
        watch.delete(reading);
        reject(err);
      },
    );
  });
}

interface Reading {
  /** performance.now() at which the body is late. */
  due: number;
  timeoutMs: number;
  giveUp(error: AppError): void;
}

const watches = new WeakMap<AbortSignal, ReadingWatch>();

function watchOf(closing: AbortSignal): ReadingWatch {
  let watch = watches.get(closing);
  if (!watch) watches.set(closing, (watch = new ReadingWatch(closing)));
  return watch;
}

/**
 * The bodies being read under one shutdown signal, with one timer for all of them (set for the earliest due)
 * and one listener on the signal: a timer and a listener per request cost more than reading a small body.
 */
class ReadingWatch {
  private readonly reading = new Set<Reading>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private armedFor = Number.POSITIVE_INFINITY;

  constructor(private readonly closing: AbortSignal) {
    closing.addEventListener("abort", () => {
      const all = [...this.reading];
      this.reading.clear();
      for (const r of all) r.giveUp(shuttingDown());
    }, { once: true });
  }

  add(r: Reading): void {
    if (this.closing.aborted) {
      r.giveUp(shuttingDown());
      return;
    }
    this.reading.add(r);
    if (r.due < this.armedFor) this.arm(r.due);
  }

  delete(r: Reading): void {
    this.reading.delete(r);
  }

  private arm(due: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedFor = due;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, due - performance.now()));
    // The sockets of the bodies being read keep the process alive, not this timer.
    this.timer.unref?.();
  }

  private sweep(): void {
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const r of this.reading) {
      if (r.due <= now) {
        this.reading.delete(r);
        r.giveUp(new AppError("request_timeout", `the request body did not arrive within ${r.timeoutMs} ms`, { headers: CLOSE }));
      } else if (r.due < next) next = r.due;
    }
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
  }
}

const shuttingDown = () =>
  new AppError("service_unavailable", "the service is shutting down; retry the request", { headers: { ...CLOSE, "retry-after": "1" } });

const CLOSE = { connection: "close" };
