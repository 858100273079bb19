/**
 * Runs a database chore now and then every `intervalMs` (unref'd, so it never keeps the process alive),
 * reporting each run's result or error. Returns a function that stops it. Chores run by every instance must
 * be idempotent (a DELETE of what has expired is).
 */
export function runPeriodically<T>(
  chore: () => Promise<T>,
  onResult: (result: { value: T } | { error: unknown }) => void,
  intervalMs: number,
): () => void {
  const run = () =>
    chore().then(
      (value) => onResult({ value }),
      (error) => onResult({ error }),
    );
  const timer = setInterval(run, intervalMs);
  timer.unref();
  void run();
  return () => clearInterval(timer);
}
