import { Elysia } from "elysia";
import { databaseTimeoutKind, isDatabaseUnavailable } from "../db/availability.ts";
import { isStorageFull, STORAGE_RETRY_AFTER_SECS, type StorageHealth } from "../db/storage-health.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { AppError, type ErrorDetail, validationFailed } from "./errors.ts";
import { allowedMethods } from "./method-not-allowed.ts";
import { requestState } from "./request-state.ts";

/** Seconds a client should wait before retrying when the database is unreachable. */
const DATABASE_RETRY_AFTER = "2";

/**
 * One error envelope for everything (SPEC §2): our AppErrors, Elysia's own (not found, validation, parse),
 * an unreachable database (503 + Retry-After) and anything unexpected (500, logged in full, never revealed).
 */
export function errorHandler(deps: {
  logger: Logger;
  metrics: Metrics;
  routes: () => { method: string; path: string }[];
  /** Told of every database failure: a full disk is 503 with Retry-After, one log line per episode. */
  storage?: Pick<StorageHealth, "report">;
}) {
  return new Elysia({ name: "error-handler" }).onError({ as: "global" }, ({ code, error, request, set, route }) => {
    const state = requestState(request);
    const appError = toAppError(code, error, request.method, state.path, deps);
    // The route pattern, never the raw target: a target may carry an address (`CONNECT user@example.com:443`).
    const where = { request_id: state.id, method: request.method, route: route || "unmatched" };
    if (appError.status >= 500 && appError.code === "internal_error") deps.logger.error({ err: error, ...where }, "unhandled error");
    else if (appError.options.logDetail) deps.logger.warn({ ...where, detail: appError.options.logDetail }, appError.message);
    set.status = appError.status;
    for (const [name, value] of Object.entries(appError.options.headers ?? {})) set.headers[name] = value;
    set.headers["content-type"] = "application/json";
    return appError.toBody(state.id);
  });
}

function toAppError(
  code: string | number,
  error: unknown,
  method: string,
  path: string | null,
  deps: { metrics: Metrics; routes: () => { method: string; path: string }[]; storage?: Pick<StorageHealth, "report"> },
): AppError {
  if (error instanceof AppError) {
    // Ours, but possibly about the database: `outcome_unknown` carries the lost connection as its cause.
    countDatabaseFailure(error, deps.metrics);
    return error;
  }
  switch (code) {
    case "NOT_FOUND": {
      if (path === null) return new AppError("bad_request", "the request target must be a path such as /api/conversations");
      const allow = allowedMethods(deps.routes(), path);
      if (allow.length > 0 && !allow.includes(method)) {
        return new AppError("method_not_allowed", `${method} is not allowed on ${echo(path)}`, {
          headers: { allow: allow.join(", ") },
        });
      }
      return new AppError("not_found", `no route for ${method} ${echo(path)}`);
    }
    case "VALIDATION":
      return validationFailed(validationDetails(error));
    case "PARSE": {
      // Elysia wraps whatever the parser threw; ours throws the precise 413/415/400 as the cause.
      const cause = (error as { cause?: unknown }).cause;
      return cause instanceof AppError ? cause : new AppError("invalid_json", "request body is not valid JSON");
    }
    case "INVALID_COOKIE_SIGNATURE":
    case "INVALID_FILE_TYPE":
      return new AppError("bad_request", (error as Error).message);
  }
  if (isStorageFull(error)) {
    // Not a crash and not the client's fault: the write did not commit, and will once space returns.
    deps.storage?.report(error);
    deps.metrics.storageFullRefusals.inc();
    return new AppError("service_unavailable", "the database is out of storage space; nothing was stored, retry later", {
      headers: { "retry-after": String(STORAGE_RETRY_AFTER_SECS) },
    });
  }
  if (isDatabaseUnavailable(error)) {
    countDatabaseFailure(error, deps.metrics);
    return new AppError("service_unavailable", "the database is unavailable; nothing was stored, retry later", {
      headers: { "retry-after": DATABASE_RETRY_AFTER },
    });
  }
  return new AppError("internal_error", "internal error; the request id identifies it in the logs");
}

/** A 503 the database caused, whatever its code: counted as unavailable, and by the bound it ran into, if any. */
function countDatabaseFailure(error: unknown, metrics: Metrics): void {
  if (!isDatabaseUnavailable(error)) return;
  metrics.databaseUnavailable.inc();
  const timeout = databaseTimeoutKind(error);
  if (timeout) metrics.databaseTimeouts.inc({ kind: timeout });
}

/** At most this many details, each path and message at most this long: a hostile body cannot make the answer big. */
const MAX_DETAILS = 20;
const MAX_DETAIL_TEXT = 200;

/** A client-chosen string repeated in an answer, cut to a length that still identifies it. */
function echo(text: string): string {
  return text.length > MAX_DETAIL_TEXT ? `${text.slice(0, MAX_DETAIL_TEXT)}…` : text;
}

/**
 * Elysia's ValidationError lists every issue of a (standard) schema in `all`; the envelope wants `{path, message}`.
 * Only the issue's path and message are used, never the value it was found in.
 */
function validationDetails(error: unknown): ErrorDetail[] {
  const e = error as { all?: { path?: string; message?: string; summary?: string }[]; type?: string };
  const prefix = e.type === "query" ? "query." : e.type === "params" ? "params." : "";
  const all = Array.isArray(e.all) ? e.all.slice(0, MAX_DETAILS) : [];
  const details = all.map((issue) => {
    const path = String(issue.path ?? "root").replace(/^\//, "").replaceAll("/", ".") || "root";
    return { path: echo(prefix + path), message: echo(String(issue.message ?? issue.summary ?? "is invalid")) };
  });
  return details.length > 0 ? details : [{ path: "root", message: "is invalid" }];
}
