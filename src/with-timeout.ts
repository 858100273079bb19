/** What `withTimeout` rejects with: the other server gave no answer in time (the message says how long). */
export class NoAnswerError extends Error {
  override name = "NoAnswerError";
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

/**
 * `promise`, or a rejection with NoAnswerError ("no answer within `ms` ms") once that much time passed first (the
 * promise is left running; its later outcome is ignored). For waits on another server that must not hang their
 * caller: /readyz's database probe, a shared-limit check on Redis, `check`'s look at Redis.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new NoAnswerError(ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
