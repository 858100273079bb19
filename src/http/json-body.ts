import { Elysia } from "elysia";
import { readWithinDeadline } from "./body-deadline.ts";
import { assertAcceptsJson, assertDeclaredLength, readJsonBody } from "./negotiation.ts";
import { requestState } from "./request-state.ts";

export interface JsonBodyOptions {
  maxBodyBytes: number;
  /** How long a body may take to arrive (408 after that). */
  bodyTimeoutMs: number;
  /** Aborted when shutdown stops waiting for requests still receiving their body (503 after that). */
  closing?: AbortSignal;
  /** Paths that negotiate their own representation (metrics, the docs page). */
  skipAccept: (path: string) => boolean;
  /**
   * Paths whose routes read and decode their body themselves (the providers' webhooks, see http/raw-body.ts):
   * this parser leaves them alone, and every other route keeps refusing what is not JSON.
   */
  ownBody?: (path: string) => boolean;
  /** Paths whose POST takes no body (`/api/messages/{id}/cancel`): one sent without any needs no Content-Type. */
  bodiless?: (path: string) => boolean;
  /**
   * The server the requests arrive on, to close a connection whose body is late (null under `app.handle`).
   * Passed in rather than read from Elysia's context: a hook that reads `server` there makes every route's
   * handler define it on each request's context.
   */
  server?: () => { timeout(request: Request, seconds: number): void } | null;
}

/**
 * Content negotiation for the JSON API (SPEC §2): 406 when Accept rules out JSON, 413 past the body limit,
 * 415 for a body that is not application/json, 400 for malformed JSON, 408 for a body that arrives too slowly.
 * The raw bytes are kept for fingerprints; a request's `rawBodyCheck` (signed webhooks) sees them before they are
 * decoded.
 */
export function jsonBody(options: JsonBodyOptions) {
  const closing = options.closing ?? new AbortController().signal;
  return new Elysia({ name: "json-body" })
    .onRequest(function checkDeclaredLength({ request }) {
      if (request.method !== "GET" && request.method !== "HEAD") assertDeclaredLength(request, options.maxBodyBytes);
    })
    .onParse({ as: "global" }, function parseJson({ request }) {
      // DELETE takes no body (the API's one DELETE names its target in the path), so none is required of it.
      if (request.method === "DELETE" && !hasBody(request)) return;
      const state = requestState(request);
      const path = state.path ?? "";
      if (options.ownBody?.(path)) return;
      if (options.bodiless?.(path) && !hasBody(request)) return;
      return readWithinDeadline(readJsonBody(request, options.maxBodyBytes, state.rawBodyCheck), {
        timeoutMs: options.bodyTimeoutMs,
        closing,
        // Bun keeps the socket waiting for the rest of the body even after a `Connection: close` answer; this
        // closes it within a few seconds (its timer runs in 4 s steps).
        abandon: () => options.server?.()?.timeout(request, 1),
      }).then(({ value, raw }) => {
        state.rawBody = raw;
        return value;
      });
    })
    .onBeforeHandle({ as: "global" }, function negotiate({ request, path }) {
      if (!options.skipAccept(path)) assertAcceptsJson(request);
    });
}

function hasBody(request: Request): boolean {
  const length = request.headers.get("content-length");
  return request.headers.has("transfer-encoding") || (length !== null && length.trim() !== "0");
}
