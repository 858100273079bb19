import { createHash } from "node:crypto";
import { principalOf } from "./auth.ts";
import { AppError } from "./errors.ts";
import { requestState } from "./request-state.ts";

/** An Idempotency-Key as the services see it: scoped to (API key, route), with a fingerprint of the body. */
export interface IdempotencyRequest {
  scope: string;
  key: string;
  hash: string;
}

/** 1–255 visible ASCII characters (SPEC §5). */
const VALID_KEY = /^[\x21-\x7e]{1,255}$/;

export const REPLAYED_HEADER = "idempotent-replayed";

/**
 * Reads the Idempotency-Key header of a request whose body was already parsed. The key is scoped to the
 * caller's principal and the route, so two clients can never replay each other's responses; the fingerprint
 * is a SHA-256 of the raw body exactly as sent.
 */
export function idempotencyRequest(request: Request, route: string): IdempotencyRequest | undefined {
  const key = request.headers.get("idempotency-key");
  if (key === null) return undefined;
  if (!VALID_KEY.test(key)) {
    throw new AppError("bad_request", "Idempotency-Key must be 1 to 255 visible ASCII characters", {
      details: [{ path: "header.idempotency-key", message: "must be 1 to 255 visible ASCII characters" }],
    });
  }
  const raw = requestState(request).rawBody ?? new Uint8Array();
  return { scope: `${principalOf(request).id}:POST ${route}`, key, hash: createHash("sha256").update(raw).digest("hex") };
}

/** The answer of a write as the routes hand it to the response: a replayed one carries the replay marker. */
export interface WriteAnswer<B> {
  status: number;
  body: B;
  replayed: boolean;
}

/** Applies a write's answer to the response: its status, and `Idempotent-Replayed: true` when it was replayed. */
export function respondWith<B>(set: { status?: number | string; headers: Record<string, string | number> }, answer: WriteAnswer<B>): B {
  set.status = answer.status;
  if (answer.replayed) set.headers[REPLAYED_HEADER] = "true";
  return answer.body;
}
