import type { RequestState } from "./request-state.ts";

/** What a step may set on the response (Elysia's `set`): rate-limit headers. */
export interface ResponseSet {
  headers: Record<string, unknown>;
}

/**
 * One check a request passes on arrival, before routing and before its body is read (rate limits, authentication).
 * Throws (or rejects) to refuse the request. Returns undefined when it has nothing to wait for — a request it does
 * not concern — so that such a request costs no promise.
 */
export type AdmissionStep = (request: Request, state: RequestState, set: ResponseSet) => Promise<void> | undefined;

/**
 * The steps in order, as one step that request-context's `onRequest` runs. It stays synchronous while each step
 * answers synchronously (/healthz, /readyz, /metrics on loopback: no step applies), and waits for a step's
 * promise before starting the next once one needs to.
 */
export function admission(...steps: AdmissionStep[]): AdmissionStep {
  async function after(pending: Promise<void>, next: number, request: Request, state: RequestState, set: ResponseSet): Promise<void> {
    await pending;
    for (let i = next; i < steps.length; i++) await steps[i]!(request, state, set);
  }
  return function admit(request, state, set) {
    for (let i = 0; i < steps.length; i++) {
      const pending = steps[i]!(request, state, set);
      if (pending !== undefined) return after(pending, i + 1, request, state, set);
    }
    return undefined;
  };
}
