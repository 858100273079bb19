import { Elysia } from "elysia";
import { type Logger, writeRequestLine } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { beginRequest, requestState } from "./request-state.ts";
import { requestPath } from "./request-target.ts";
import { DOCS_CSP } from "./security-headers.ts";

export interface RequestContextOptions {
  logger: Logger;
  metrics: Metrics;
  /** Precomputed security headers, set on every response. */
  headers: Record<string, string>;
  /** Path prefix of the API reference, which gets a content policy that lets its page run. */
  docsPath: string;
}

/**
 * First and last word on every request: assigns the request id, sets the fixed response headers, and
 * once the response is out, logs one line and records the request metrics by route pattern (never by raw path,
 * so ids and addresses never become label values).
 */
export function requestContext(options: RequestContextOptions) {
  const { logger, metrics, headers, docsPath } = options;
  const headerEntries = Object.entries(headers);
  const docsPolicy = Boolean(headers["content-security-policy"]);
  return new Elysia({ name: "request-context" })
    .onRequest(function assignRequestId({ request, set }) {
      const state = beginRequest(request);
      for (const [name, value] of headerEntries) set.headers[name] = value;
      set.headers["x-request-id"] = state.id;
      if (docsPolicy && isDocsRequest(request.url, docsPath)) {
        set.headers["content-security-policy"] = DOCS_CSP;
        set.headers["cache-control"] = "no-cache";
      }
    })
    .onAfterResponse({ as: "global" }, function logRequest({ request, set, route }) {
      const state = requestState(request);
      const seconds = (performance.now() - state.startedAt) / 1000;
      const status = typeof set.status === "number" ? set.status : Number(set.status) || 200;
      const method = request.method;
      const pattern = route || "unmatched";
      metrics.recordRequest(method, pattern, status, seconds);
      if (logger.isLevelEnabled("info")) {
        writeRequestLine(logger, { request_id: state.id, method, route: pattern, status, duration_ms: Math.round(seconds * 1e4) / 10 });
      }
    });
}

/** Whether the target is under the API reference; the substring test spares most requests the parse. */
const isDocsRequest = (url: string, docsPath: string) => url.includes(docsPath) && requestPath(url)?.startsWith(docsPath) === true;
