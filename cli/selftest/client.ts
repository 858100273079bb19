import { createHmac } from "node:crypto";

/**
 * The selftest's HTTP client: plain `fetch` to the URL the operator named (an outbound client run by an operator,
 * not the service's own egress; see test/security/egress-only-path.test.ts). It carries the API key, signs webhook
 * bodies when given a secret, and keeps the run inside the target's per-client rate limit, so the suite checks
 * the service instead of tripping over its own burst. Inbound bodies are signed whenever a secret was given, and
 * then the generic webhooks go without the API key, as a provider posts them.
 */

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
  /** Shorthand for `json` as an object (empty when the body was not a JSON object). */
  body: Record<string, unknown>;
}

export interface RequestOptions {
  method?: string;
  /** Sent as JSON (serialised here) unless `raw` is given. */
  json?: unknown;
  /** Sent as is, with the `contentType` given (default application/json). */
  raw?: string | Uint8Array;
  contentType?: string | null;
  headers?: Record<string, string>;
  /** Leave the Authorization header out (the auth cases). */
  anonymous?: boolean;
  /** Send an inbound body without the signature the client would otherwise add (the signature cases). */
  unsigned?: boolean;
  /** A 429 is what the case is after: answer it instead of waiting and asking again. */
  expectRateLimit?: boolean;
}

export interface ClientOptions {
  target: string;
  token?: string | undefined;
  webhookSecret?: string | undefined;
  /** Aborts every request of the case running it (its timeout). */
  signal?: AbortSignal;
}

/** What the client has learnt of the target's per-client bucket from the RateLimit-* headers it answered. */
interface BucketMirror {
  limit: number;
  tokens: number;
  at: number;
}

/** Tokens kept back so the two lanes of cases never run the bucket dry between them. */
const RESERVE = 2;
/**
 * Cases assumed to run at once, all charged to the same bucket, when the runner has not said (runner.ts runs two
 * lanes, and a few cases of the mock lane side by side; it counts them through `Client.caseStarted`).
 */
const CASE_LANES = 2;
/** Times an unexpected 429 is waited out before it is answered to the case. */
const RATE_LIMIT_RETRIES = 5;

/**
 * Which of the target's buckets a request is charged to: with a key, the key's (SPEC §8: per API key); without one
 * (the auth cases, a signed webhook), the client address's. Each is mirrored on its own.
 */
export type Lane = "key" | "anonymous";

/** One per run: both lanes of cases share its view of the rate limits. */
export class RateBudget {
  private readonly mirrors = new Map<Lane, BucketMirror>();
  /** Cases running now, as the runner counts them (0: not counted, CASE_LANES assumed). */
  running = 0;
  /** The lane of the requests the limit questions are about: the key's when the run has one. */
  private readonly main: Lane;

  constructor(hasKey = false) {
    this.main = hasKey ? "key" : "anonymous";
  }

  /** Waits, when the mirror says the bucket is nearly empty, until a token (plus the reserve) has refilled. */
  async beforeRequest(signal?: AbortSignal, lane: Lane = this.main): Promise<void> {
    const m = this.mirrors.get(lane);
    if (!m) return;
    const ratePerMs = m.limit / 60_000;
    const now = Date.now();
    const tokens = Math.min(m.limit, m.tokens + (now - m.at) * ratePerMs);
    const needed = Math.min(1 + RESERVE, m.limit);
    m.tokens = tokens - 1;
    m.at = now;
    if (tokens >= needed) return;
    await sleep((needed - tokens) / ratePerMs, signal);
  }

  /** Learns from an answer that carried the per-client headers (not a 429, whose headers may be a sender's). */
  observe(answer: { status: number; headers: Headers }, lane: Lane = this.main): void {
    if (answer.status === 429) return;
    const limit = Number(answer.headers.get("ratelimit-limit"));
    const remaining = Number(answer.headers.get("ratelimit-remaining"));
    if (!Number.isFinite(limit) || limit <= 0 || !Number.isFinite(remaining) || !answer.headers.has("ratelimit-remaining")) return;
    this.mirrors.set(lane, { limit, tokens: remaining, at: Date.now() });
  }

  /**
   * At most how long `requests` more requests on `lane` wait for the bucket, as last seen, while each other case
   * running spends a token for each of them: 0 when the bucket holds them all (and when it was never seen).
   */
  waitBoundMs(requests: number, lane: Lane = this.main): number {
    const m = this.mirrors.get(lane);
    if (!m) return 0;
    const ratePerMs = m.limit / 60_000;
    const tokens = Math.min(m.limit, m.tokens + (Date.now() - m.at) * ratePerMs);
    const needed = (this.running > 0 ? this.running : CASE_LANES) * requests + RESERVE;
    return tokens >= needed ? 0 : (needed - tokens) / ratePerMs;
  }

  /** The last limit seen on the run's own lane, for the rate-limit case. */
  get limit(): number | undefined {
    return this.mirrors.get(this.main)?.limit;
  }

  /** True when the next request of the run's own lane would have to wait for the bucket to refill. */
  get exhausted(): boolean {
    const m = this.mirrors.get(this.main);
    if (!m) return false;
    return m.tokens + (Date.now() - m.at) * (m.limit / 60_000) < Math.min(1 + RESERVE, m.limit);
  }
}

export class Client {
  /** API requests (those the per-client rate limit charges) this client sent, waits and retries included. */
  apiRequests = 0;

  constructor(
    private readonly options: ClientOptions,
    private readonly budget: RateBudget,
  ) {}

  /** A client whose requests end with `signal` (one case's timeout). */
  withSignal(signal: AbortSignal): Client {
    return new Client({ ...this.options, signal }, this.budget);
  }

  /** Counts a case as running (the budget's wait bounds assume each running case spends as many tokens); call the result when it ends. */
  caseStarted(): () => void {
    this.budget.running += 1;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.budget.running -= 1;
    };
  }

  get rateLimit(): number | undefined {
    return this.budget.limit;
  }

  /** The target's per-client bucket (as last seen) is empty: the next API request waits for its refill. */
  get rateLimitExhausted(): boolean {
    return this.budget.exhausted;
  }

  /**
   * At most how long the next `requests` API requests carrying the run's key (when it has one) wait for the
   * target's per-client bucket: what a case that must act before a deadline of the service's adds to it.
   */
  paceBoundMs(requests: number): number {
    return this.budget.waitBoundMs(requests);
  }

  /** The target's address of `path` (which may carry a query). */
  private url(path: string): string {
    return new URL(path, this.options.target).toString();
  }

  get(path: string, options: Omit<RequestOptions, "method" | "json" | "raw"> = {}): Promise<Answer> {
    return this.request(path, { ...options, method: "GET" });
  }

  post(path: string, json: unknown, options: Omit<RequestOptions, "method" | "json"> = {}): Promise<Answer> {
    return this.request(path, { ...options, method: "POST", json });
  }

  async request(path: string, options: RequestOptions = {}): Promise<Answer> {
    const limited = new URL(path, this.options.target).pathname.startsWith("/api/");
    const lane: Lane = this.sendsKey(path, options) ? "key" : "anonymous";
    for (let attempt = 0; ; attempt++) {
      if (limited) {
        await this.budget.beforeRequest(this.options.signal, lane);
        this.apiRequests += 1;
      }
      const answer = await this.once(path, options);
      if (limited) this.budget.observe(answer, lane);
      if (answer.status !== 429 || options.expectRateLimit || attempt >= RATE_LIMIT_RETRIES) return answer;
      // Someone else's traffic (or an earlier run) emptied the bucket: wait as told, then ask again.
      const retryAfter = Number(answer.headers.get("retry-after"));
      await sleep((Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter, 30) : 1) * 1000, this.options.signal);
    }
  }

  /** Whether the request carries the run's API key (and is then charged to the key's bucket). */
  private sendsKey(path: string, options: RequestOptions): boolean {
    // With a secret, the generic webhooks are posted as a provider posts them: signed, without an API key.
    const signsInstead = !options.unsigned && this.options.webhookSecret !== undefined && isGenericWebhook(path);
    return Boolean(this.options.token) && !options.anonymous && !signsInstead;
  }

  private async once(path: string, options: RequestOptions): Promise<Answer> {
    const headers = new Headers(options.headers);
    if (this.sendsKey(path, options) && !headers.has("authorization")) {
      headers.set("authorization", `Bearer ${this.options.token}`);
    }
    let body: string | Uint8Array | undefined;
    if (options.raw !== undefined) body = options.raw;
    else if (options.json !== undefined) body = JSON.stringify(options.json);
    if (body !== undefined && options.contentType !== null && !headers.has("content-type")) {
      headers.set("content-type", options.contentType ?? "application/json");
    }
    if (!options.unsigned && this.options.webhookSecret !== undefined && body !== undefined && isSignedInbound(path)) {
      headers.set("x-messaging-signature", signBody(this.options.webhookSecret, body));
    }
    const response = await fetch(this.url(path), {
      method: options.method ?? "GET",
      headers,
      body,
      redirect: "manual",
      signal: this.options.signal,
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const isObject = typeof json === "object" && json !== null && !Array.isArray(json);
    return { status: response.status, headers: response.headers, text, json, body: isObject ? (json as Record<string, unknown>) : {} };
  }
}

/** The generic inbound webhooks (SPEC §4): a signature opens them as an API key with the inbound scope does. */
const isGenericWebhook = (path: string) => /^\/api\/webhooks\/(sms|email)\/?(\?|$)/.test(path);
/** Where inbound messages enter (SPEC §4, §7): the paths a target with webhook secrets wants signed. */
const isSignedInbound = (path: string) => path.startsWith("/api/webhooks/") || path.startsWith("/api/provider/mock/inbound");

/**
 * SPEC §8's built-in webhook signature, written here from the contract rather than borrowed from the service, so
 * a fault in the service's own signing code cannot hide behind the same code in the test:
 * `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>`.
 */
export function signBody(secret: string, body: string | Uint8Array, nowSecs = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac("sha256", secret).update(`${nowSecs}.`).update(body).digest("hex");
  return `t=${nowSecs},v1=${mac}`;
}

/** Waits `ms`, or rejects as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A response body on one short line, for messages that must stay one line. */
export const clipLine = (text: string, max = 120) => {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
};
