import { readWithinDeadline } from "./body-deadline.ts";
import { AppError } from "./errors.ts";
import { readBodyBytes } from "./negotiation.ts";
import { requestState } from "./request-state.ts";

export interface RawBodyLimits {
  maxBodyBytes: number;
  /** How long a body may take to arrive (408 after that). */
  bodyTimeoutMs: number;
  /** Aborted when shutdown stops waiting for requests still receiving their body (503 after that). */
  closing?: AbortSignal;
}

/** A body read but not yet decoded: the bytes a signature covers, and what the sender said they are. */
export interface RawBody {
  bytes: Uint8Array;
  /** The Content-Type as sent (a multipart body needs its boundary parameter to be decoded). */
  contentType: string;
}

/** The media type of a Content-Type header, lower-cased and without parameters; empty when there is none. */
export function mediaTypeOf(contentType: string | null): string {
  if (!contentType) return "";
  const semicolon = contentType.indexOf(";");
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

/**
 * Reads a body of one of the `accepted` media types for a route that decodes it itself (the providers' webhooks,
 * which are form-encoded or multipart and signed over what was sent), under the same rules as the JSON reader: 415
 * for another media type before anything is read, 413 past the size limit, 408 when it trickles in, 503 once
 * shutdown stops waiting. The bytes are kept in the request state as the JSON reader keeps them.
 */
export async function readRawBody(
  request: Request,
  server: { timeout(request: Request, seconds: number): void } | null,
  limits: RawBodyLimits,
  accepted: readonly string[],
): Promise<RawBody> {
  const contentType = request.headers.get("content-type") ?? "";
  if (!accepted.includes(mediaTypeOf(contentType))) {
    throw new AppError("unsupported_media_type", `request body must be ${accepted.join(" or ")}`);
  }
  const bytes = await readWithinDeadline(readBodyBytes(request, limits.maxBodyBytes), {
    timeoutMs: limits.bodyTimeoutMs,
    closing: limits.closing ?? new AbortController().signal,
    // As in json-body.ts: Bun keeps the socket waiting for the rest of the body; this closes it.
    abandon: () => server?.timeout(request, 1),
  });
  requestState(request).rawBody = bytes;
  return { bytes, contentType };
}
