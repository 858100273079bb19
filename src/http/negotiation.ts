import { AppError } from "./errors.ts";
import { jsonTextProblem } from "./json-text.ts";

/**
 * True when an Accept header admits JSON: `application/json`, `application/*` or `*\/*` with q > 0,
 * parameters and letter case ignored. A missing or empty header admits anything.
 */
export function acceptsJson(accept: string | null): boolean {
  if (!accept || !accept.trim()) return true;
  for (const range of accept.split(",")) {
    const [type, ...params] = range.split(";");
    const media = type!.trim().toLowerCase();
    if (media !== "application/json" && media !== "application/*" && media !== "*/*") continue;
    const q = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith("q="));
    if (q === undefined) return true;
    const weight = Number(q.slice(2));
    if (Number.isFinite(weight) && weight > 0) return true;
  }
  return false;
}

/** True for `application/json` with any parameters and letter case. */
export function isJsonContentType(contentType: string | null): boolean {
  if (!contentType) return false;
  const semicolon = contentType.indexOf(";");
  const media = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  return media === "application/json";
}

export function assertAcceptsJson(request: Request): void {
  if (!acceptsJson(request.headers.get("accept"))) {
    throw new AppError("not_acceptable", "this route answers application/json only; send an Accept header that allows it");
  }
}

/** Refuses a declared body larger than the limit before reading it. */
export function assertDeclaredLength(request: Request, maxBytes: number): void {
  const length = request.headers.get("content-length");
  if (length !== null && Number(length) > maxBytes) throw tooLarge(maxBytes);
}

const tooLarge = (maxBytes: number) => new AppError("payload_too_large", `request body exceeds the limit of ${maxBytes} bytes`);

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads and parses a JSON body within the size limit, refusing text too deeply nested or holding a lone
 * surrogate before it is parsed. Returns the parsed value and the raw bytes (signatures and idempotency
 * fingerprints are computed over what the client sent, byte-order mark included).
 *
 * `checkRaw`, when given, sees the bytes before anything else does and may throw: a route that authenticates its
 * body (signed webhooks) refuses an unauthenticated request before saying anything about the body, so even the
 * media type is judged only after it.
 */
export function readJsonBody(
  request: Request,
  maxBytes: number,
  checkRaw?: (bytes: Uint8Array) => void,
): Promise<{ value: unknown; raw: Uint8Array }> {
  // Callbacks on the read rather than async functions around it: every send passes here.
  const isJson = isJsonContentType(request.headers.get("content-type"));
  if (!isJson && !checkRaw) return Promise.reject(unsupportedMediaType());
  return readBodyBytes(request, maxBytes).then((bytes) => {
    checkRaw?.(bytes);
    if (!isJson) throw unsupportedMediaType();
    return { value: parseJsonBytes(bytes), raw: bytes };
  });
}

function parseJsonBytes(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new AppError("invalid_json", "request body is not valid UTF-8");
  }
  if (!text.trim()) throw new AppError("invalid_json", "request body is empty; a JSON object is expected");
  const problem = jsonTextProblem(text);
  if (problem) throw new AppError("invalid_json", problem);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new AppError("invalid_json", `request body is not valid JSON: ${(err as Error).message}`);
  }
}

const unsupportedMediaType = () => new AppError("unsupported_media_type", "request body must be application/json");

/** The body's bytes, refused with 413 once more than `maxBytes` arrive (a declared length was checked on arrival). */
export function readBodyBytes(request: Request, maxBytes: number): Promise<Uint8Array> {
  // A declared length was already checked; a chunked body is counted as it arrives. `bytes()` reads the body
  // without the stream that reading `request.body` sets up.
  if (request.headers.get("content-length") !== null) return request.bytes();
  return readChunkedBody(request, maxBytes);
}

async function readChunkedBody(request: Request, maxBytes: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > maxBytes) throw tooLarge(maxBytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
