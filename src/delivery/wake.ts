/**
 * How a committed send reaches the delivery workers: the dispatcher of this process is woken directly, and
 * those of other instances through PostgreSQL `NOTIFY` on one channel. NOTIFY is sent after the commit, as its
 * own statement, at most one in flight and at most one per `minIntervalMs`: a burst of sends costs a handful
 * of notifications, not one each, and never lengthens a send's own transaction. A notification lost to a
 * broken connection costs latency only: every worker also polls.
 *
 * Each NOTIFY is a transaction of its own with a transaction id, so a commit record and its WAL flush: at the
 * old 10 ms an API-only instance under load made about as many notify commits as send statements (issue 19's
 * profile: ~740 beside 411 in 6 s). At 50 ms that is at most 20 a second, while another instance's workers hear
 * of a send at most 50 ms after it committed (the local dispatcher is woken at once, without NOTIFY).
 */
export const DELIVERY_CHANNEL = "messaging_delivery";

/** The least time between two NOTIFYs of one process. */
export const NOTIFY_INTERVAL_MS = 50;

export class DeliveryWake {
  private local: (() => void) | undefined;
  private inFlight = false;
  private pending = false;
  private lastAt = 0;

  constructor(
    private readonly notify?: () => Promise<void>,
    private readonly minIntervalMs = NOTIFY_INTERVAL_MS,
  ) {}

  /** The dispatcher of this process, if it runs one. */
  attach(onWake: () => void): void {
    this.local = onWake;
  }

  /** A send (or a batch of sends) has committed. */
  committed(): void {
    this.local?.();
    if (!this.notify) return;
    this.pending = true;
    if (!this.inFlight) this.flush();
  }

  private flush(): void {
    const wait = Math.max(0, this.lastAt + this.minIntervalMs - Date.now());
    this.inFlight = true;
    setTimeout(() => {
      this.pending = false;
      this.lastAt = Date.now();
      this.notify!()
        .catch(() => {})
        .finally(() => {
          this.inFlight = false;
          if (this.pending) this.flush();
        });
    }, wait).unref();
  }
}
