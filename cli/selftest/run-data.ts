/**
 * Fresh, recognisable test data for one run, so the suite can run against a live deployment again and again
 * without meeting itself or real traffic: phone numbers in the fictional +1 555 range with a random run part,
 * email addresses under `example.test` (a name reserved for testing, RFC 2606), and the run id in every body.
 */
export class RunData {
  /** Eight random hex digits: named in every body and email domain of the run. */
  readonly runId: string;
  /** Eight random decimal digits: the run's part of every phone number. */
  private readonly runDigits: string;
  private next = 0;

  constructor(random: () => number = Math.random) {
    const digits = (n: number, base: number) =>
      Array.from({ length: n }, () => Math.floor(random() * base).toString(base)).join("");
    this.runId = digits(8, 16);
    this.runDigits = digits(8, 10);
  }

  /** A new phone number of this run: `+1555` + the run's 8 digits + 3 of its own (15 digits, E.164's most). */
  phone(): string {
    return `+1555${this.runDigits}${String(this.take() % 1000).padStart(3, "0")}`;
  }

  /** A new email address of this run, under `run-<id>.example.test`. */
  email(name = "user"): string {
    return `${name}-${this.take()}@run-${this.runId}.example.test`;
  }

  /** A message body that names the run, so anyone reading the deployment's data knows where it came from. */
  body(text = "hello"): string {
    return `selftest ${this.runId}: ${text}`;
  }

  /** A fresh provider id for an inbound webhook. */
  providerId(): string {
    return `selftest-${this.runId}-${this.take()}`;
  }

  /** A fresh Idempotency-Key. */
  idempotencyKey(): string {
    return `selftest-${this.runId}-${this.take()}`;
  }

  /** Now, shifted by `offsetMs`, as RFC 3339 (what a client sends as `timestamp`). */
  timestamp(offsetMs = 0): string {
    return new Date(Date.now() + offsetMs).toISOString();
  }

  private take(): number {
    this.next += 1;
    return this.next;
  }
}
