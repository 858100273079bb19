/**
 * An email's attachments, fetched from their URLs so SendGrid and SMTP can send them as real attachments (Twilio
 * fetches its `MediaUrl`s itself). Every fetch goes through the egress guard, like any other request the service
 * makes, with the per-message size cap as the guard's response limit: the sum of all attachments of one message
 * must stay under it.
 *
 * What a failure means for the message: a permanent one (an answer other than 2xx that is not a 408/429/5xx, a URL
 * the guard refuses, an attachment or a total over the cap) fails the message with that reason; a transient one (a
 * timeout, a refused connection, a 5xx) retries it later.
 */
import { type Egress, EgressRefusedError, TRANSIENT_REFUSALS } from "../security/egress.ts";
import { permanentError, type ProviderOutcome, transientError } from "./provider.ts";

export interface Attachment {
  filename: string;
  contentType: string;
  content: Uint8Array;
}

/** SPEC §3's default cap on the attachments of one email, in bytes (10 MiB). */
export const DEFAULT_ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024;

export interface AttachmentFetcher {
  /** The attachments in order, or the outcome the message ends with when one cannot be fetched. */
  load(urls: readonly string[]): Promise<Attachment[] | ProviderOutcome>;
}

/** A fetcher through `egress(maxBytes)`: a guard whose response limit is what is left of the message's cap. */
export function attachmentFetcher(egress: (maxResponseBytes: number) => Egress, maxBytes: number): AttachmentFetcher {
  return {
    async load(urls) {
      const out: Attachment[] = [];
      let left = maxBytes;
      for (const [index, url] of urls.entries()) {
        const label = `attachment ${index + 1}`;
        if (left <= 0) return permanentError(`${label}: the attachments exceed ${maxBytes} bytes together`);
        let response;
        try {
          response = await egress(left).request(url, { method: "GET", headers: { accept: "*/*" } });
        } catch (err) {
          return fetchFailure(label, err, maxBytes);
        }
        const { status, headers, body } = response;
        if (status < 200 || status > 299) {
          const reason = `${label}: fetching it answered ${status}`;
          return status === 408 || status === 429 || status >= 500 ? transientError(reason) : permanentError(reason);
        }
        left -= body.byteLength;
        if (left < 0) return permanentError(`${label}: the attachments exceed ${maxBytes} bytes together`);
        out.push({ filename: attachmentName(headers.get("content-disposition"), response.url, index), contentType: contentTypeOf(headers.get("content-type")), content: body });
      }
      return out;
    },
  };
}

function fetchFailure(label: string, err: unknown, maxBytes: number): ProviderOutcome {
  if (!(err instanceof EgressRefusedError)) return transientError(`${label}: fetching it failed: ${err instanceof Error ? err.message : String(err)}`);
  // Too large is final here: the same attachment will be as large next time.
  if (err.reason === "response_too_large") return permanentError(`${label}: larger than the ${maxBytes} bytes an email's attachments may take`);
  const reason = `${label}: fetching it was refused (${err.reason}): ${err.message}`;
  return TRANSIENT_REFUSALS.has(err.reason) ? transientError(reason) : permanentError(reason);
}

/** The media type the server gave (parameters kept, e.g. a charset), or `application/octet-stream`. */
function contentTypeOf(header: string | null): string {
  const value = header?.trim() ?? "";
  return /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+(?:\s*;.*)?$/i.test(value) && !/[\r\n]/.test(value) ? value : "application/octet-stream";
}

/**
 * The file name: `Content-Disposition`'s `filename*` (RFC 6266/5987, UTF-8) or `filename`, else the URL path's last
 * segment, else `attachment-N`. Path separators and control characters are removed: a name is never a path.
 */
export function attachmentName(disposition: string | null, url: string, index: number): string {
  const fromHeader = disposition === null ? undefined : dispositionName(disposition);
  let fromPath: string | undefined;
  try {
    const last = new URL(url).pathname.split("/").pop() ?? "";
    fromPath = last === "" ? undefined : decodeURIComponent(last);
  } catch {
    fromPath = undefined;
  }
  const name = (fromHeader ?? fromPath ?? "").replace(/[\\/\u0000-\u001f\u007f]/g, "").trim().slice(0, 200);
  return name === "" || name === "." || name === ".." ? `attachment-${index + 1}` : name;
}

function dispositionName(header: string): string | undefined {
  const extended = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(header);
  if (extended) {
    try {
      return decodeURIComponent(extended[1]!.trim());
    } catch {
      // fall through to the plain parameter
    }
  }
  const quoted = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(header);
  if (quoted) return quoted[1]!.replace(/\\(.)/g, "$1");
  const token = /filename\s*=\s*([^;\s]+)/i.exec(header);
  return token?.[1];
}
