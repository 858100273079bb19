/**
 * Request coalescing for identical reads: calls with the same key that arrive in the same event-loop turn
 * share one query. The query is sent only after that turn (setImmediate), so every caller it answers arrived
 * before it started and sees every write committed before it asked: no read is older than its request.
 * Under load many clients ask for the same page in one turn; they then cost one round trip instead of one each.
 */
export function coalesceSameTurn<A extends unknown[], R>(
  load: (...args: A) => Promise<R>,
  keyOf: (...args: A) => string,
  /** Told how many callers beyond the first one a load answered, when there were any. */
  onShared: (extraCallers: number) => void = () => {},
): (...args: A) => Promise<R> {
  const groups = new Map<string, { resolve(r: R): void; reject(e: unknown): void }[]>();
  return (...args: A) =>
    new Promise<R>((resolve, reject) => {
      const key = keyOf(...args);
      const waiting = groups.get(key);
      if (waiting) {
        waiting.push({ resolve, reject });
        return;
      }
      const group = [{ resolve, reject }];
      groups.set(key, group);
      setImmediate(() => {
        groups.delete(key);
        if (group.length > 1) onShared(group.length - 1);
        load(...args).then(
          (result) => {
            for (const w of group) w.resolve(result);
          },
          (error) => {
            for (const w of group) w.reject(error);
          },
        );
      });
    });
}
