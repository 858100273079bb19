/**
 * The closed list of error codes and their HTTP status, in one place (SPEC §2). Services throw `AppError`;
 * the error handler turns every error, ours or the framework's, into the one envelope.
 */
export const ERROR_STATUS = {
  bad_request: 400,
  validation_failed: 400,
  invalid_json: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  not_acceptable: 406,
  request_timeout: 408,
  idempotency_key_in_use: 409,
  not_cancelable: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  recipient_opted_out: 422,
  url_not_allowed: 422,
  sender_not_allowed: 422,
  rate_limited: 429,
  internal_error: 500,
  not_implemented: 501,
  service_unavailable: 503,
  outcome_unknown: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorDetail {
  path: string;
  message: string;
}

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  request_id: string;
  details?: ErrorDetail[];
  /** `not_cancelable`: the message's status when the cancel was refused. */
  status?: string;
}

export class AppError extends Error {
  override name = "AppError";
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly options: {
      details?: ErrorDetail[];
      headers?: Record<string, string>;
      /** What the operator needs and the client must not see (a database host, a driver error): logged, never answered. */
      logDetail?: string;
      /** The error behind this answer (a lost database connection behind `outcome_unknown`), for metrics and logs. */
      cause?: unknown;
      /** `not_cancelable`: the status that made the cancel impossible, answered beside the message. */
      status?: string;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = ERROR_STATUS[code];
  }

  toBody(requestId: string): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message, request_id: requestId };
    if (this.options.details) body.details = this.options.details;
    if (this.options.status !== undefined) body.status = this.options.status;
    return body;
  }
}

/** A 400 naming each offending field; `message` repeats the first so a client that reads only it still learns which. */
export function validationFailed(details: ErrorDetail[]): AppError {
  const first = details[0];
  const message = first ? `${first.path === "root" ? "request" : first.path}: ${first.message}` : "request is invalid";
  return new AppError("validation_failed", message, { details });
}
