import type { BucketDecision } from "../domain/token-bucket.ts";
import { type BucketShape, type Limiter, perMinute } from "../limits/limiter.ts";
import type { Metrics } from "../observability/metrics.ts";
import { clientAddress, TrustedProxies } from "../security/client-address.ts";
import type { ResponseSet } from "./admission.ts";
import type { RequestServer } from "./auth.ts";
import { AppError } from "./errors.ts";
import type { RequestState } from "./request-state.ts";

/** RateLimit-* headers of the IETF draft, and Retry-After on refusal. */
export function rateLimitHeaders(d: BucketDecision): Record<string, string> {
  const headers: Record<string, string> = {
    "ratelimit-limit": String(d.limit),
    "ratelimit-remaining": String(d.remaining),
    "ratelimit-reset": String(d.resetSeconds),
  };
  if (!d.allowed) headers["retry-after"] = String(d.retryAfterSeconds);
  return headers;
}

export function rateLimited(d: BucketDecision, what: string): AppError {
  return new AppError("rate_limited", `${what}: limit of ${d.limit} per minute reached; retry in ${d.retryAfterSeconds} s`, {
    headers: rateLimitHeaders(d),
  });
}

/**
 * The socket peer of a request: `"local"` when there is no socket (`app.handle` in tests, which then all
 * share one client). "local" is not an IP, so it is never a trusted proxy and its X-Forwarded-For is ignored.
 */
export function peerAddress(request: Request, server: RequestServer): string {
  return server?.requestIP(request)?.address ?? "local";
}

export interface RequestRateLimitOptions {
  limiter: Limiter;
  /** `MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN`: an authenticated request's budget unless its key has its own. */
  perKeyPerMinute: number;
  /** `API_RATE_LIMIT_PER_IP_PER_MIN`: the budget of each client address for requests that do not authenticate. */
  perIpPerMinute: number;
  /** `MESSAGING_TRUSTED_PROXIES`: addresses and CIDR ranges, already validated by the settings schema. */
  trustedProxies: readonly string[];
  metrics: Metrics;
  /** Which paths are limited (the API; probes and metrics are not). */
  applies: (path: string) => boolean;
  /** Whether authentication will decide this request: auth is on, the route needs a key and one is presented. */
  authenticates: (request: Request, path: string) => boolean;
  /** The configured provider a path is a webhook route of (`twilio/sms-main`), or null. */
  providerWebhook: (path: string) => string | null;
}

type Limit = "key" | "ip" | "webhook";
const REFUSALS: Record<Limit, string> = {
  key: "too many requests with this API key",
  ip: "too many requests from this client",
  webhook: "too many requests for this provider",
};

/**
 * Which bucket a request is charged to (SPEC §8). Two hooks, one on each side of authentication:
 * - before it, a request that will not authenticate (auth off, an open route, or no key presented) is charged to
 *   its client address: the socket address, or the right-most untrusted X-Forwarded-For hop when the peer is a
 *   trusted proxy; a provider's webhook route instead to that provider at the per-key limit, whatever address the
 *   provider calls from (a provider's few addresses carry the reports of every message, and Twilio does not retry
 *   a status callback refused with 429). A request presenting a wrong key is the auth-failure counter's.
 * - after it, an authenticated request is charged to its API key (the key's own limit, or the per-key default).
 * The buckets are the limiter's: per process, or shared by every instance through Redis. Both are steps of request
 * admission (http/admission.ts): synchronous (undefined) for a request they do not charge.
 */
export function requestRateLimit(options: RequestRateLimitOptions) {
  const trusted = new TrustedProxies(options.trustedProxies);
  const perKey = perMinute(options.perKeyPerMinute);
  const perIp = perMinute(options.perIpPerMinute);

  const takeNow = options.limiter.takeNow?.bind(options.limiter);

  /**
   * Charges the bucket: synchronously (undefined) with an in-process limiter, so that admitting the request costs
   * no promise (Elysia then need not wait for the onRequest hook); through a promise with the shared one.
   */
  function charge(limit: Limit, name: string, shape: BucketShape, set: ResponseSet): Promise<void> | undefined {
    if (takeNow) {
      apply(limit, takeNow(name, shape), set);
      return undefined;
    }
    return options.limiter.take(name, shape).then((decision) => apply(limit, decision, set));
  }

  function apply(limit: Limit, decision: BucketDecision, set: ResponseSet): void {
    if (!decision.allowed) {
      options.metrics.rateLimited.inc({ limit });
      throw rateLimited(decision, REFUSALS[limit]);
    }
    set.headers["ratelimit-limit"] = String(decision.limit);
    set.headers["ratelimit-remaining"] = String(decision.remaining);
    set.headers["ratelimit-reset"] = String(decision.resetSeconds);
  }

  return {
    beforeAuth(request: Request, state: RequestState, set: ResponseSet, server: RequestServer): Promise<void> | undefined {
      const path = state.path ?? "";
      if (!options.applies(path) || options.authenticates(request, path)) return undefined;
      const provider = options.providerWebhook(path);
      if (provider !== null) return charge("webhook", `webhook:${provider}`, perKey, set);
      const client = clientAddress(peerAddress(request, server), request.headers.get("x-forwarded-for"), trusted);
      return charge("ip", `ip:${client}`, perIp, set);
    },
    afterAuth(_request: Request, state: RequestState, set: ResponseSet): Promise<void> | undefined {
      const principal = state.principal;
      if (!principal || !options.applies(state.path ?? "")) return undefined;
      return charge("key", `key:${principal.id}`, principal.rateLimitPerMin ? perMinute(principal.rateLimitPerMin) : perKey, set);
    },
  };
}
