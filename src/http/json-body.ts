import { Elysia } from "elysia";
import { assertAcceptsJson, assertDeclaredLength, readJsonBody } from "./negotiation.ts";
import { requestState } from "./request-state.ts";

export interface JsonBodyOptions {
  maxBodyBytes: number;
  /** Paths that negotiate their own representation (metrics, the docs page). */
  skipAccept: (path: string) => boolean;
}

/**
 * Content negotiation for the JSON API (SPEC §2): 406 when Accept rules out JSON, 413 past the body limit,
 * 415 for a body that is not application/json, 400 for malformed JSON. The raw text is kept for fingerprints.
 */
export function jsonBody(options: JsonBodyOptions) {
  return new Elysia({ name: "json-body" })
    .onRequest(function checkDeclaredLength({ request }) {
      if (request.method !== "GET" && request.method !== "HEAD") assertDeclaredLength(request, options.maxBodyBytes);
    })
    .onParse({ as: "global" }, async function parseJson({ request }) {
      const { value, raw } = await readJsonBody(request, options.maxBodyBytes);
      requestState(request).rawBody = raw;
      return value;
    })
    .onBeforeHandle({ as: "global" }, function negotiate({ request, path }) {
      if (!options.skipAccept(path)) assertAcceptsJson(request);
    });
}
