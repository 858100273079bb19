/**
 * How a committed send reaches the delivery workers: the dispatcher of this process is woken directly, and
 * those of other instances through PostgreSQL `NOTIFY` on one channel. NOTIFY is sent after the commit, as its
 * own statement, at most one in flight and at most one per `minIntervalMs`: a burst of sends costs a handful
 * of notifications, not one each, and never lengthens a send's own transaction. A notification lost to a
 * broken connection costs latency only: every worker also polls.
 */
export const DELIVERY_CHANNEL = "messaging_delivery";

export class DeliveryWake {
  private local: (() => void) | undefined;
  private inFlight = false;
  private pending = false;
  private lastAt = 0;

  constructor(
    private readonly notify?: () => Promise<void>,
    private readonly minIntervalMs = 10,
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
