import { Elysia } from "elysia";
import type { ApiKeyVerifier, Scope } from "../security/api-keys.ts";
import { AppError } from "./errors.ts";
import { SIGNATURE_HEADER } from "../security/webhook-signature.ts";
import { type Principal, type RequestState, requestState } from "./request-state.ts";

export type { Principal };

export const ANONYMOUS: Principal = { id: "anonymous" };

export function principalOf(request: Request): Principal {
  return requestState(request).principal ?? ANONYMOUS;
}

/** The authenticated caller of a request, or undefined when it did not authenticate (open route, auth off). */
export function authenticatedPrincipal(request: Request): Principal | undefined {
  return requestState(request).principal;
}

/** True when an API key authenticated this request (false with auth off, and for a signature standing in for one). */
export const authenticatedByKey = (request: Request): boolean => requestState(request).principal !== undefined;

/** The server a request arrived on (null under `app.handle`, as in tests). */
export type RequestServer = { requestIP(r: Request): { address: string } | null } | null;

/**
 * Counts failed authentications per client; a client over its limit is refused even with a good key. In this
 * process or shared through Redis (limits/), hence asynchronous.
 */
export interface AuthFailureCounter {
  check(client: string): Promise<{ blocked: boolean; retryAfterSecs: number }>;
  recordFailure(client: string): Promise<unknown>;
}

export interface AuthOptions {
  mode: "on" | "off";
  verifier: ApiKeyVerifier;
  /** The scope a request needs, `"any"` for any valid key, or null when the path is open. */
  requirement: (method: string, path: string) => Scope | "any" | null;
  /** The client as the rate limit sees it (socket address, or the trusted proxies' forwarded hop). */
  clientOf: (request: Request, server: RequestServer) => string;
  failures?: AuthFailureCounter;
  /** `MESSAGING_AUTH_FAILURE_LIMIT`, named in the RateLimit-Limit of the throttle's 429. */
  failureLimit?: number;
  onFailure?: (reason: "missing" | "invalid" | "scope" | "throttled") => void;
  /**
   * Paths where a request without an Authorization header may show a webhook signature instead of a key (the
   * generic inbound webhooks, when MESSAGING_WEBHOOK_SECRETS is set). Such a request passes here only if it carries
   * the signature header; the signature plugin, which runs next, then verifies it over the raw body.
   */
  signatureMayStandIn?: (path: string) => boolean;
}

/** One message for every kind of bad key, so the answer never tells an attacker which it was. */
const unauthorized = () =>
  new AppError("unauthorized", "a valid API key is required: send Authorization: Bearer <key>", {
    headers: { "www-authenticate": "Bearer" },
  });

/** Longest Authorization header looked at; a key is 58 characters, anything far longer is not one. */
const MAX_AUTHORIZATION_LENGTH = 512;

/**
 * API-key authentication (SPEC §8), a step of request admission (http/admission.ts) that runs in `onRequest`,
 * before anything else reads the request: no body is parsed, validated or charged to a sender for a caller that
 * has not shown a key, so an unauthenticated request learns nothing but 401 (not which bodies or routes exist).
 * Missing, malformed, unknown, wrong, expired or revoked keys all get the same 401 with `WWW-Authenticate: Bearer`;
 * a key without the route's scope gets 403. A client that presented too many wrong keys recently gets 429 with
 * `Retry-After`, even with a good key, until its count decays (a request presenting no key at all is not counted:
 * it is charged to the per-IP limit instead).
 *
 * `admit` is synchronous (undefined) for a request that needs no key, so an open route costs no promise;
 * `routeCheck` is the plugin that checks the matched route pattern again before validation and the handler.
 */
export function auth(options: AuthOptions) {
  async function authenticate(request: Request, state: RequestState, path: string, needed: Scope | "any", server: RequestServer): Promise<void> {
    const client = options.clientOf(request, server);
    const throttle = await options.failures?.check(client);
    if (throttle?.blocked) {
      options.onFailure?.("throttled");
      throw new AppError("rate_limited", `too many failed authentications from this client; retry in ${throttle.retryAfterSecs} s`, {
        // The throttle's own RateLimit-* figures, as every 429 carries its refusing limit's (SPEC §8).
        headers: {
          "retry-after": String(throttle.retryAfterSecs),
          ...(options.failureLimit !== undefined && {
            "ratelimit-limit": String(options.failureLimit),
            "ratelimit-remaining": "0",
            "ratelimit-reset": String(throttle.retryAfterSecs),
          }),
        },
      });
    }
    const header = request.headers.get("authorization");
    if (header === null && request.headers.has(SIGNATURE_HEADER) && options.signatureMayStandIn?.(path)) {
      state.signatureInstead = true;
      return;
    }
    const presented = header && header.length <= MAX_AUTHORIZATION_LENGTH ? /^Bearer +(\S+) *$/i.exec(header)?.[1] : undefined;
    const principal = presented ? await options.verifier.verify(presented) : null;
    if (!principal) {
      // Only a presented credential is a guess. A request with none is plain unauthenticated traffic, which the
      // per-IP limit already charged (http/rate-limit.ts); counting it too would let a monitor or a selftest that
      // checks the 401 lock its own address out.
      if (header !== null) await options.failures?.recordFailure(client);
      options.onFailure?.(presented ? "invalid" : "missing");
      throw unauthorized();
    }
    if (needed !== "any" && !principal.scopes.has(needed)) {
      options.onFailure?.("scope");
      throw new AppError("forbidden", `this API key lacks the ${needed} scope`);
    }
    state.principal = { id: principal.id, rateLimitPerMin: principal.rateLimitPerMin };
  }

  return {
    admit(request: Request, state: RequestState, server: RequestServer): Promise<void> | undefined {
      if (options.mode === "off") return undefined;
      const path = state.path ?? "";
      const needed = options.requirement(request.method, path);
      if (needed === null) return undefined;
      return authenticate(request, state, path, needed, server);
    },
    // Defence in depth: whatever spelling of a path reached a protected route (`//api/…`, an encoded letter),
    // the matched route pattern decides too, before validation and the handler.
    routeCheck: new Elysia({ name: "auth" }).onTransform({ as: "global" }, function authenticatedRoute({ request, route }) {
      if (options.mode === "off") return;
      const state = requestState(request);
      if (state.principal !== undefined) return;
      if (state.signatureInstead === true && options.signatureMayStandIn?.(route)) return;
      if (options.requirement(request.method, route) !== null) throw unauthorized();
    }),
  };
}

/**
 * What each path needs (SPEC §8): sends need `send`, other GETs under /api `read`, the mock provider's routes
 * deleting a conversation and the event endpoints `admin`; the generic inbound webhooks `inbound` (or a webhook signature, see
 * `signatureMayStandIn`), while the providers' own webhooks (`ownProof`) are open here because they carry their
 * provider's signature instead. Any other path under /api, known or not, needs a key, so an unknown route answers
 * 401 rather than revealing that it does not exist. /metrics and the API reference need any valid key when
 * `opsNeedKey`, and are open otherwise.
 */
export function routeRequirement(opsNeedKey: boolean, docsPath: string, ownProof: (path: string) => boolean = () => false) {
  return (method: string, path: string): Scope | "any" | null => {
    if (path.startsWith("/api/")) {
      if (path.startsWith("/api/webhooks/")) return ownProof(path) ? null : "inbound";
      if (path.startsWith("/api/provider/") || path === "/api/event-endpoints" || path.startsWith("/api/event-endpoints/")) return "admin";
      if (method === "POST" && path.startsWith("/api/messages/")) return "send";
      if (method === "DELETE" && path.startsWith("/api/conversations/")) return "admin";
      return method === "GET" || method === "HEAD" ? "read" : "any";
    }
    if (path === "/metrics" || path === "/openapi.json" || path === docsPath || path.startsWith(`${docsPath}/`)) {
      return opsNeedKey ? "any" : null;
    }
    return null;
  };
}
