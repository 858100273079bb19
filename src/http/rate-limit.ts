import { Elysia } from "elysia";
import type { BucketDecision } from "../domain/token-bucket.ts";
import { TokenBuckets } from "../domain/token-bucket.ts";
import type { Metrics } from "../observability/metrics.ts";
import { AppError } from "./errors.ts";

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
  trustedProxies: string[];
  metrics: Metrics;
  /** Which paths are limited (the API; probes and metrics are not). */
  applies: (path: string) => boolean;
}

/**
 * Per-client-IP token bucket (SPEC §8), keyed by the socket address, or by the first X-Forwarded-For hop
 * when the peer is a configured trusted proxy. Per process: N instances allow N × the limit in total.
 */
export function ipRateLimit(options: IpRateLimitOptions) {
  const buckets = new TokenBuckets(options.perMinute);
  const trusted = new Set(options.trustedProxies);
  return new Elysia({ name: "ip-rate-limit" }).onRequest(function limitByIp({ request, server, set }) {
    const path = pathOf(request.url);
    if (!options.applies(path)) return;
    const peer = server?.requestIP(request)?.address ?? "local";
    const client = trusted.has(peer) ? forwardedClient(request, trusted) ?? peer : peer;
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

/** The nearest hop that is not one of our proxies: earlier hops are whatever the client chose to write. */
function forwardedClient(request: Request, trusted: Set<string>): string | undefined {
  const hops = (request.headers.get("x-forwarded-for") ?? "").split(",").map((h) => h.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted.has(hops[i]!)) return hops[i];
  return undefined;
}

function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const query = url.indexOf("?", start);
  return query === -1 ? url.slice(start) : url.slice(start, query);
}
