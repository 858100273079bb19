import { Elysia } from "elysia";
import type { BucketDecision } from "../domain/token-bucket.ts";
import { TokenBuckets } from "../domain/token-bucket.ts";
import type { Metrics } from "../observability/metrics.ts";
import { clientAddress, TrustedProxies } from "../security/client-address.ts";
import { AppError } from "./errors.ts";
import { requestPath } from "./request-target.ts";

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

export interface IpRateLimitOptions {
  perMinute: number;
  /** `MESSAGING_TRUSTED_PROXIES`: addresses and CIDR ranges, already validated by the settings schema. */
  trustedProxies: readonly string[];
  metrics: Metrics;
  /** Which paths are limited (the API; probes and metrics are not). */
  applies: (path: string) => boolean;
}

/**
 * The socket peer of a request: `"local"` when there is no socket (`app.handle` in tests, which then all
 * share one client). "local" is not an IP, so it is never a trusted proxy and its X-Forwarded-For is ignored.
 */
export function peerAddress(request: Request, server: { requestIP(request: Request): { address: string } | null } | null): string {
  return server?.requestIP(request)?.address ?? "local";
}

/**
 * Per-client-IP token bucket (SPEC §8), keyed by `clientAddress`: the socket address, or the right-most
 * untrusted X-Forwarded-For hop when the peer is a trusted proxy. Per process: N instances allow N × the
 * limit in total.
 */
export function ipRateLimit(options: IpRateLimitOptions) {
  const buckets = new TokenBuckets(options.perMinute);
  const trusted = new TrustedProxies(options.trustedProxies);
  return new Elysia({ name: "ip-rate-limit" }).onRequest(function limitByIp({ request, server, set }) {
    const path = requestPath(request.url) ?? "";
    if (!options.applies(path)) return;
    const client = clientAddress(peerAddress(request, server), request.headers.get("x-forwarded-for"), trusted);
    const decision = buckets.take(client, Date.now());
    if (!decision.allowed) {
      options.metrics.rateLimited.inc({ limit: "ip" });
      throw rateLimited(decision, "too many requests from this client");
    }
    set.headers["ratelimit-limit"] = String(decision.limit);
    set.headers["ratelimit-remaining"] = String(decision.remaining);
    set.headers["ratelimit-reset"] = String(decision.resetSeconds);
  });
}
