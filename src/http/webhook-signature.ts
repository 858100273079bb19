import { Elysia } from "elysia";
import type { Metrics } from "../observability/metrics.ts";
import {
  SIGNATURE_HEADER,
  type SignatureFailure,
  signatureHeaderProblem,
  verifyWebhookSignature,
} from "../security/webhook-signature.ts";
import { AppError } from "./errors.ts";
import { requestState } from "./request-state.ts";

export interface WebhookSignatureOptions {
  /** `MESSAGING_WEBHOOK_SECRETS`; empty means webhooks are accepted unsigned. */
  secrets: readonly string[];
  toleranceSecs: number;
  /** Whether a request to this path must be signed (the request tells whether an API key already stood in). */
  protects: (path: string, request: Request) => boolean;
  metrics: Pick<Metrics, "webhookSignatureFailures">;
  /** Unix seconds; tests move it. */
  nowSecs?: () => number;
}

const wallClockSecs = () => Math.floor(Date.now() / 1000);

/**
 * Signed webhooks (SPEC §8). On a protected path the header is judged as soon as the request arrives (missing,
 * malformed or stale: 401 before any body is read or size rule applied); the MAC is then checked over the raw
 * bytes by json-body's reader before they are decoded or parsed, so an unsigned bad body is a 401, never a 400.
 * Before validation, a last check by the matched route pattern catches what the path test could not see: a
 * request that arrived without a body (checked as the empty body it is) and any spelling of a protected path
 * the router accepts. The client hears one message whatever went wrong; the reason goes to the log (the error's
 * logDetail) and to a metric.
 */
export function webhookSignature(options: WebhookSignatureOptions) {
  const plugin = new Elysia({ name: "webhook-signature" });
  if (options.secrets.length === 0) return plugin;
  const now = options.nowSecs ?? wallClockSecs;
  const verified = new WeakSet<Request>();
  const refuse = (reason: SignatureFailure): AppError => {
    options.metrics.webhookSignatureFailures.inc({ reason });
    return new AppError("unauthorized", "missing or invalid webhook signature", { logDetail: `webhook signature refused: ${reason}` });
  };
  const verify = (request: Request, bytes: Uint8Array) => {
    const verdict = verifyWebhookSignature(request.headers.get(SIGNATURE_HEADER), bytes, options.secrets, now(), options.toleranceSecs);
    if (!verdict.ok) throw refuse(verdict.reason);
    verified.add(request);
  };

  return plugin
    .onRequest(function checkSignatureHeader({ request }) {
      const state = requestState(request);
      if (state.path === null || !options.protects(state.path, request)) return;
      const problem = signatureHeaderProblem(request.headers.get(SIGNATURE_HEADER), now(), options.toleranceSecs);
      if (problem) throw refuse(problem);
      state.rawBodyCheck = (bytes) => verify(request, bytes);
    })
    .onTransform({ as: "global" }, function requireSignature({ request, route }) {
      if (verified.has(request) || !options.protects(route, request)) return;
      verify(request, requestState(request).rawBody ?? new Uint8Array());
    });
}
