import { Elysia } from "elysia";
import { AppError } from "./errors.ts";

/** Who is calling; idempotency keys and, later, rate limits and queries are scoped by it. */
export interface Principal {
  id: string;
}

export const ANONYMOUS: Principal = { id: "anonymous" };

const principals = new WeakMap<Request, Principal>();

export function principalOf(request: Request): Principal {
  return principals.get(request) ?? ANONYMOUS;
}

/**
 * The auth slot of SPEC §8. With `MESSAGING_AUTH=off` every caller is anonymous. With `on`, /api routes
 * other than webhooks need `Authorization: Bearer <key>`; the key store (hashed keys, `messaging keys`)
 * arrives with the API-key issue, so until then no key is valid and such requests get 401.
 */
export function auth(options: { mode: "on" | "off"; protects: (path: string) => boolean }) {
  return new Elysia({ name: "auth" }).onBeforeHandle({ as: "global" }, function authenticate({ request, path }) {
    if (options.mode === "off" || !options.protects(path)) return;
    const header = request.headers.get("authorization");
    if (!header?.toLowerCase().startsWith("bearer ")) {
      throw new AppError("unauthorized", "missing API key: send Authorization: Bearer <key>", {
        headers: { "www-authenticate": "Bearer" },
      });
    }
    throw new AppError("unauthorized", "invalid API key", { headers: { "www-authenticate": "Bearer" } });
  });
}
