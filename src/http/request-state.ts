import { requestPath } from "./request-target.ts";

/**
 * What the cross-cutting plugins learn about one request before (or without) reaching a route:
 * its id, its arrival time, its path, who authenticated it and the raw body bytes. Kept on the Request rather
 * than in Elysia's context, so that errors raised before routing (size, parse) still know the request id; one
 * per request, which every plugin shares.
 */
export interface RequestState {
  id: string;
  startedAt: number;
  /** `requestPath` of the target (null: no path, as in `CONNECT host:port`), computed once. */
  path: string | null;
  /** The API key that authenticated the request (http/auth.ts); absent when none did. */
  principal?: Principal;
  /** A webhook signature stands in for the key (auth.ts lets it through, webhook-signature.ts verifies it). */
  signatureInstead?: boolean;
  /** The body exactly as sent (before decoding, which would drop a byte-order mark): fingerprints use it. */
  rawBody?: Uint8Array;
  /**
   * A check the raw bytes must pass before they are decoded or parsed; throws to refuse the request. Set by
   * http/webhook-signature.ts on signed routes, run by http/json-body.ts once the body has been read.
   */
  rawBodyCheck?: (bytes: Uint8Array) => void;
}

/** Who is calling; idempotency keys are scoped by it (the API key's id, or `anonymous` with auth off). */
export interface Principal {
  id: string;
  /** The key's own requests per minute (null: the deployment's per-key limit); absent for `anonymous`. */
  rateLimitPerMin?: number | null;
}

/**
 * The state rides on the Request object itself under a private symbol, which dies with it. A WeakMap keyed by the
 * request cost 0.18 µs more per request (a hash insert for every fresh key, and its table swept at every
 * collection), on every request the service answers.
 */
const STATE: unique symbol = Symbol("messaging.requestState");
type CarriesState = Request & { [STATE]?: RequestState };

/** Also JSON text as it is (no quote, backslash or control character): the log line writes it unescaped. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export function beginRequest(request: Request): RequestState {
  const inbound = request.headers.get("x-request-id");
  const state: RequestState = {
    id: inbound !== null && SANE_REQUEST_ID.test(inbound) ? inbound : crypto.randomUUID(),
    startedAt: performance.now(),
    path: requestPath(request.url),
  };
  (request as CarriesState)[STATE] = state;
  return state;
}

export function requestState(request: Request): RequestState {
  return (request as CarriesState)[STATE] ?? beginRequest(request);
}
