/** Phone numbers one run may make: 4 digits of each number are its own (a full run makes a few hundred). */
export const PHONES_PER_RUN = 10_000;

/**
 * Fresh, recognisable test data for one run, so the suite can run against a live deployment again and again
 * without meeting itself or real traffic: phone numbers in the fictional +1 555 range with a random run part,
 * email addresses under `example.test` (a name reserved for testing, RFC 2606), and the run id in every body.
 *
 * Nothing repeats within a run: phone numbers have a counter of their own (never wrapped: the run stops with an
 * error rather than reuse one), and the other kinds share one that is written out in full. Across runs the random
 * run part tells them apart: 7 digits in a phone number, 8 hex digits elsewhere.
 */
export class RunData {
  /** Eight random hex digits: named in every body and email domain of the run. */
  readonly runId: string;
  /** Seven random decimal digits: the run's part of every phone number. */
  private readonly runDigits: string;
  private next = 0;
  private phones = 0;

  constructor(random: () => number = Math.random) {
    const digits = (n: number, base: number) =>
      Array.from({ length: n }, () => Math.floor(random() * base).toString(base)).join("");
    this.runId = digits(8, 16);
    this.runDigits = digits(7, 10);
  }

  /** A new phone number of this run: `+1555` + the run's 7 digits + 4 of its own (15 digits, E.164's most). */
  phone(): string {
    if (this.phones >= PHONES_PER_RUN) throw new Error(`a selftest run makes at most ${PHONES_PER_RUN} phone numbers`);
    const own = this.phones;
    this.phones += 1;
    return `+1555${this.runDigits}${String(own).padStart(4, "0")}`;
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
