/**
 * What the cross-cutting plugins learn about one request before (or without) reaching a route:
 * its id, its arrival time and the raw body text. Kept beside the Request rather than in Elysia's context,
 * so that errors raised before routing (size, parse) still know the request id.
 */
export interface RequestState {
  id: string;
  startedAt: number;
  rawBody?: string;
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
