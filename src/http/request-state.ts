/**
 * What the cross-cutting plugins learn about one request before (or without) reaching a route:
 * its id, its arrival time and the raw body bytes. Kept beside the Request rather than in Elysia's context,
 * so that errors raised before routing (size, parse) still know the request id.
 */
export interface RequestState {
  id: string;
  startedAt: number;
  /** The body exactly as sent (before decoding, which would drop a byte-order mark): fingerprints use it. */
  rawBody?: Uint8Array;
  /**
   * A check the raw bytes must pass before they are decoded or parsed; throws to refuse the request. Set by
   * http/webhook-signature.ts on signed routes, run by http/json-body.ts once the body has been read.
   */
  rawBodyCheck?: (bytes: Uint8Array) => void;
}

const states = new WeakMap<Request, RequestState>();

const SANE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export function beginRequest(request: Request): RequestState {
  const inbound = request.headers.get("x-request-id");
  const state: RequestState = {
    id: inbound && SANE_REQUEST_ID.test(inbound) ? inbound : crypto.randomUUID(),
    startedAt: performance.now(),
  };
  states.set(request, state);
  return state;
}

export function requestState(request: Request): RequestState {
  return states.get(request) ?? beginRequest(request);
}
