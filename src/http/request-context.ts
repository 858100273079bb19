import { Elysia } from "elysia";
import { type Logger, writeRequestLine } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { AdmissionStep } from "./admission.ts";
import { beginRequest, requestState } from "./request-state.ts";
import { DOCS_CSP } from "./security-headers.ts";

export interface RequestContextOptions {
  logger: Logger;
  metrics: Metrics;
  /** Precomputed security headers, set on every response. */
  headers: Record<string, string>;
  /** Path prefix of the API reference, which gets a content policy that lets its page run. */
  docsPath: string;
  /** What every request passes next, on arrival (rate limits, authentication: http/admission.ts). */
  admit?: AdmissionStep;
}

const admitAll: AdmissionStep = () => undefined;

/**
 * First and last word on every request. On arrival, one `onRequest` hook assigns the request id, sets the fixed
 * response headers and runs admission (a promise only for requests that wait on a limiter or a key lookup). Once
 * the response is out, it logs one line and records the request metrics by route pattern (never by raw path, so
 * ids and addresses never become label values).
 */
export function requestContext(options: RequestContextOptions) {
  const { logger, metrics, docsPath } = options;
  const admit = options.admit ?? admitAll;
  const names = Object.keys(options.headers);
  const values = names.map((name) => options.headers[name]!);
  const docsPolicy = Boolean(options.headers["content-security-policy"]);
  return new Elysia({ name: "request-context" })
    .onRequest(function admitRequest({ request, set }) {
      const state = beginRequest(request);
      const headers = set.headers;
      for (let i = 0; i < names.length; i++) headers[names[i]!] = values[i]!;
      headers["x-request-id"] = state.id;
      if (docsPolicy && state.path !== null && state.path.startsWith(docsPath)) {
        headers["content-security-policy"] = DOCS_CSP;
        headers["cache-control"] = "no-cache";
      }
      // Elysia awaits what an onRequest hook returns only when its source reads as asynchronous (a `return f(`).
      return admit(request, state, set);
    })
    .onAfterResponse({ as: "global" }, function logRequest({ request, set, route }) {
      const state = requestState(request);
      const seconds = (performance.now() - state.startedAt) / 1000;
      const status = typeof set.status === "number" ? set.status : Number(set.status) || 200;
      const method = request.method;
      const pattern = route || "unmatched";
      metrics.recordRequest(method, pattern, status, seconds);
      if (logger.isLevelEnabled("info")) {
        // The id is ours (a UUID) or an inbound one that passed SANE_REQUEST_ID: JSON text either way.
        writeRequestLine(logger, { request_id: state.id, method, route: pattern, status, duration_ms: Math.round(seconds * 1e4) / 10 }, true);
      }
    });
}
