import { createHash } from "node:crypto";
import type { IdempotencyRequest } from "../modules/idempotency/service.ts";
import { AppError } from "./errors.ts";
import { requestState } from "./request-state.ts";

/** 1–255 visible ASCII characters (SPEC §5). */
const VALID_KEY = /^[\x21-\x7e]{1,255}$/;

export const REPLAYED_HEADER = "idempotent-replayed";

/**
 * Reads the Idempotency-Key header of a request whose body was already parsed.
 * The fingerprint is a SHA-256 of the raw body exactly as sent.
 */
export function idempotencyRequest(request: Request, scope: string): IdempotencyRequest | undefined {
  const key = request.headers.get("idempotency-key");
  if (key === null) return undefined;
  if (!VALID_KEY.test(key)) {
    throw new AppError("bad_request", "Idempotency-Key must be 1 to 255 visible ASCII characters", {
      details: [{ path: "header.idempotency-key", message: "must be 1 to 255 visible ASCII characters" }],
    });
  }
  const raw = requestState(request).rawBody ?? "";
  return { scope, key, hash: createHash("sha256").update(raw).digest("hex") };
}
