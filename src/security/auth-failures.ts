/**
 * Failed authentications per client address, so a client guessing keys is stopped after a few tries
 * (SPEC §8). Pure: the caller passes the clock, and decides what a failure is.
 *
 * Each failure adds 1 to the client's count, which leaks linearly at `limit` per window, so `limit`
 * failures within one window reach the limit while a client that fails now and then never does. Reaching
 * it blocks the client for a whole window (answered 429 with Retry-After, even with a correct key: the
 * attacker must not learn that a guess was right), by which time the count has leaked back to zero.
 */

/** What `check` and `recordFailure` decided for one client. */
export interface AuthThrottle {
  blocked: boolean;
  /** Whole seconds until the client is served again (0 when not blocked). */
  retryAfterSecs: number;
}

export interface AuthFailuresOptions {
  /** Failures within the window that block the client (`MESSAGING_AUTH_FAILURE_LIMIT`). */
  limit: number;
  /** The window, in seconds (`MESSAGING_AUTH_FAILURE_WINDOW_SECS`). */
  windowSecs: number;
  /**
   * Most clients remembered. A flood of fresh addresses evicts the least recently failing ones first;
   * whoever controls that many addresses has that many budgets anyway, so nothing is lost by forgetting.
   */
  maxClients?: number;
}

interface Failures {
  /** Failures remembered at `at`, before leaking. */
  count: number;
  at: number;
  /** Epoch ms until which the client is refused; 0 when it is not blocked. */
  blockedUntil: number;
}

const NOT_BLOCKED: AuthThrottle = { blocked: false, retryAfterSecs: 0 };

export class AuthFailures {
  private readonly clients = new Map<string, Failures>();
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly leakPerMs: number;
  private readonly maxClients: number;

  constructor(options: AuthFailuresOptions) {
    this.limit = options.limit;
    this.windowMs = options.windowSecs * 1000;
    this.leakPerMs = options.limit / this.windowMs;
    this.maxClients = options.maxClients ?? 100_000;
  }

  /** Clients remembered now; never more than `maxClients`. */
  get size(): number {
    return this.clients.size;
  }

  /** Whether requests from `ip` are refused now, before their credentials are even looked at. */
  check(ip: string, nowMs: number): AuthThrottle {
    const entry = this.clients.get(ip);
    if (!entry) return NOT_BLOCKED;
    if (entry.blockedUntil > nowMs) return { blocked: true, retryAfterSecs: Math.ceil((entry.blockedUntil - nowMs) / 1000) };
    // Nothing left to remember: forgetting it now keeps the map to the clients that matter.
    if (this.remembered(entry, nowMs) === 0) this.clients.delete(ip);
    return NOT_BLOCKED;
  }

  /** Counts one failed authentication from `ip`; the answer says whether `ip` is now blocked. */
  recordFailure(ip: string, nowMs: number): AuthThrottle {
    let entry = this.clients.get(ip);
    if (entry) this.clients.delete(ip); // re-inserted below: the map's order is least recently failing first
    else entry = this.admit(nowMs);
    if (entry.blockedUntil <= nowMs) {
      entry.blockedUntil = 0;
      entry.count = this.remembered(entry, nowMs) + 1;
      entry.at = nowMs;
      // More than limit − 1 remembered: `limit` failures in a burst block even though a little has leaked
      // between them; a client whose count leaked a whole failure away is below it again.
      if (entry.count > this.limit - 1) entry.blockedUntil = nowMs + this.windowMs;
    }
    this.clients.set(ip, entry);
    return this.check(ip, nowMs);
  }

  /** Failures still remembered at `nowMs`, after leaking since the last one. */
  private remembered(entry: Failures, nowMs: number): number {
    return Math.max(0, entry.count - (nowMs - entry.at) * this.leakPerMs);
  }

  private admit(nowMs: number): Failures {
    if (this.clients.size >= this.maxClients) this.makeRoom(nowMs);
    return { count: 0, at: nowMs, blockedUntil: 0 };
  }

  /**
   * Clients with nothing left to remember go first; if that frees less than a tenth of the map, the least
   * recently failing go (the map's order) until a tenth is free. A tenth at a time keeps the O(n) walk to
   * once per maxClients/10 admissions (deleting one entry per admission from the front of a Map walks
   * over every earlier deleted slot: quadratic under a flood).
   */
  private makeRoom(nowMs: number): void {
    for (const [ip, entry] of this.clients) {
      if (entry.blockedUntil <= nowMs && this.remembered(entry, nowMs) === 0) this.clients.delete(ip);
    }
    const target = this.maxClients - Math.max(1, Math.floor(this.maxClients / 10));
    for (const ip of this.clients.keys()) {
      if (this.clients.size <= target) break;
      this.clients.delete(ip);
    }
  }
}
