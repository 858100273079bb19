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
  return new Promise<T>((resolve, reject) => {
    const giveUp = (error: AppError) => {
      cleanUp();
      deadline.abandon();
      reject(error);
    };
    const onTimeout = () =>
      giveUp(new AppError("request_timeout", `the request body did not arrive within ${deadline.timeoutMs} ms`, { headers: CLOSE }));
    const onClosing = () =>
      giveUp(
        new AppError("service_unavailable", "the service is shutting down; retry the request", {
          headers: { ...CLOSE, "retry-after": "1" },
        }),
      );
    const timer = setTimeout(onTimeout, deadline.timeoutMs);
    deadline.closing.addEventListener("abort", onClosing, { once: true });
    const cleanUp = () => {
      clearTimeout(timer);
      deadline.closing.removeEventListener("abort", onClosing);
    };
    if (deadline.closing.aborted) onClosing();
    // A read given up on still settles later (it rejects when the connection closes): nobody waits for it then.
    read.then(
      (value) => {
        cleanUp();
        resolve(value);
      },
      (err: unknown) => {
        cleanUp();
        reject(err);
      },
    );
  });
}

const CLOSE = { connection: "close" };
