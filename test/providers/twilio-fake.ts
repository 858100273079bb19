/**
 * A fake Twilio Messages API over real HTTP on loopback, written from Twilio's documentation of the Message
 * resource and its error codes, for the adapter's tests to talk to through the egress guard.
 *
 * What it reproduces of the documented wire format:
 * - `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded; anything else is 404 (code 20404).
 * - HTTP basic auth with the account SID and auth token, or an API key SID and secret of that account; otherwise
 *   401 with code 20003. Another account's SID in the path is 404 (code 20404), as Twilio answers it.
 * - Required fields: `To` (21604 when missing), `From` or `MessagingServiceSid` (21603), `Body` or `MediaUrl`
 *   (21602); a `To` that is not E.164 is 21211; a recipient who replied STOP is 21610. All as 400 with Twilio's
 *   error JSON `{ code, message, more_info, status }`.
 * - Success: 201 with a Message resource: `sid` of `SM` and 32 hex digits, `status` `queued` (or `accepted` when a
 *   messaging service was named, as Twilio documents for services), `num_media`, `uri`, dates in RFC 2822 form.
 *
 * What it cannot know and only approximates: the exact wording of Twilio's messages (the codes are documented, the
 * text varies), the full set of fields of a real Message resource (it returns the common ones), and every check
 * Twilio makes (sender ownership, media reachability, country permissions). Faults are scripted, one per request.
 *
 * Built on node:http rather than Bun.serve because a connection reset needs the socket, which Bun.serve does not
 * expose to a handler.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { loadOperation } from "../helpers/openapi.ts";

/** A fault the next request gets instead of the documented behaviour. */
export type TwilioFault =
  | { kind: "rate_limited"; retryAfterSeconds?: number; status?: number }
  | { kind: "server_error"; status: 500 | 502 | 503 }
  | { kind: "garbage"; status: number; body: string | Uint8Array; contentType?: string }
  | { kind: "hang" }
  | { kind: "reset" }
  | { kind: "cut_body" };

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  form: [string, string][];
  /** When the request arrived (epoch ms, before its body was read): what pacing tests measure. */
  at: number;
}

export interface FakeTwilio {
  port: number;
  baseUrl: string;
  requests: RecordedRequest[];
  /** The sid of every message the fake created, in order. */
  sids: string[];
  /** Queues faults: each request takes the next one, and is answered normally once they run out. */
  script(...faults: TwilioFault[]): void;
  /** Forgets the recorded requests and any fault still queued, between tests. */
  reset(): void;
  /** Recipients who replied STOP: a send to them is 21610. */
  unsubscribed: Set<string>;
  /** Credentials the fake accepts; add an API key pair or a rotated token to test them. */
  credentials: Map<string, string>;
  /**
   * Every way a request to Messages.json departed from Twilio's own OpenAPI description (../shared/specs/), each
   * prefixed with the request's number; `assertConformant()` fails the test on any and clears them.
   */
  violations: string[];
  /** Why requests are not checked against the description (it is absent), or undefined when they are. */
  unchecked: string | undefined;
  assertConformant(): void;
  close(): Promise<void>;
}

/** Twilio's description of creating a Message (its parameters and form body), shared by every fake. */
const createMessage = loadOperation("twilio_api_v2010.json", "/2010-04-01/Accounts/{AccountSid}/Messages.json", "post");

export const FAKE_ACCOUNT_SID = `AC${"0123456789abcdef".repeat(2)}`;
export const FAKE_AUTH_TOKEN = "fake-auth-token-0123456789abcdef";

const E164 = /^\+[1-9]\d{1,14}$/;

const errorBody = (code: number, message: string, status: number) => ({
  code,
  message,
  more_info: `https://www.twilio.com/docs/errors/${code}`,
  status,
});

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Whether the request's basic credentials are a pair the fake accepts. */
function authenticated(req: IncomingMessage, credentials: Map<string, string>): boolean {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(req.headers.authorization ?? "");
  if (!match) return false;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon > 0 && credentials.get(decoded.slice(0, colon)) === decoded.slice(colon + 1);
}

/** The first documented check the form fails, as Twilio's code, message and status. */
function formProblem(form: URLSearchParams, unsubscribed: Set<string>): [number, string] | undefined {
  const to = form.get("To");
  if (!to) return [21604, "A 'To' phone number is required."];
  if (!form.get("From") && !form.get("MessagingServiceSid")) return [21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."];
  if (!form.get("Body") && form.getAll("MediaUrl").length === 0) return [21602, "Message body is required."];
  if (!E164.test(to)) return [21211, `The 'To' number ${to} is not a valid phone number.`];
  if (unsubscribed.has(to)) return [21610, "Attempt to send to unsubscribed recipient"];
  return undefined;
}

function messageResource(accountSid: string, form: URLSearchParams): Record<string, unknown> {
  const sid = `SM${randomBytes(16).toString("hex")}`;
  const now = new Date().toUTCString().replace("GMT", "+0000");
  const service = form.get("MessagingServiceSid");
  const media = form.getAll("MediaUrl");
  return {
    account_sid: accountSid,
    api_version: "2010-04-01",
    body: form.get("Body") ?? "",
    date_created: now,
    date_sent: null,
    date_updated: now,
    direction: "outbound-api",
    error_code: null,
    error_message: null,
    from: service ? null : form.get("From"),
    messaging_service_sid: service,
    num_media: String(media.length),
    num_segments: "1",
    price: null,
    price_unit: "USD",
    sid,
    status: service ? "accepted" : "queued",
    subresource_uris: { media: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}/Media.json` },
    to: form.get("To"),
    uri: `/2010-04-01/Accounts/${accountSid}/Messages/${sid}.json`,
  };
}

function applyFault(fault: TwilioFault, req: IncomingMessage, res: ServerResponse): void {
  switch (fault.kind) {
    case "rate_limited": {
      const status = fault.status ?? 429;
      const headers: Record<string, string> = fault.retryAfterSeconds === undefined ? {} : { "retry-after": String(fault.retryAfterSeconds) };
      return sendJson(res, status, errorBody(20429, "Too Many Requests", status), headers);
    }
    case "server_error":
      if (fault.status === 500) return sendJson(res, 500, errorBody(20500, "Internal Server Error", 500));
      res.writeHead(fault.status, { "content-type": "text/html" });
      return void res.end(`<html><body><h1>${fault.status}</h1></body></html>`);
    case "garbage":
      res.writeHead(fault.status, { "content-type": fault.contentType ?? "application/json" });
      return void res.end(fault.body);
    case "hang":
      return; // never answered; close() ends the connection
    case "reset":
      return void req.socket.destroy();
    case "cut_body":
      res.writeHead(201, { "content-type": "application/json", "content-length": "400" });
      res.write('{"sid": "SM');
      setTimeout(() => req.socket.destroy(), 20);
      return;
  }
}

/** Starts the fake on 127.0.0.1 with a free port. */
export async function startFakeTwilio(): Promise<FakeTwilio> {
  const requests: RecordedRequest[] = [];
  const sids: string[] = [];
  const faults: TwilioFault[] = [];
  const unsubscribed = new Set<string>();
  const credentials = new Map([[FAKE_ACCOUNT_SID, FAKE_AUTH_TOKEN]]);
  const violations: string[] = [];
  const path = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/;

  const server = createServer(async (req, res) => {
    const at = Date.now();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const form = new URLSearchParams(body);
    requests.push({ method: req.method ?? "", path: req.url ?? "", headers: { ...req.headers }, body, form: [...form], at });
    const messages = path.exec(req.url ?? "");
    if (typeof createMessage !== "string" && req.method === "POST" && messages) {
      const found = createMessage.violations({ path: { AccountSid: decodeURIComponent(messages[1]!) }, headers: req.headers, form: [...form] });
      violations.push(...found.map((v) => `request ${requests.length}: ${v}`));
    }

    const fault = faults.shift();
    if (fault) return applyFault(fault, req, res);

    const route = path.exec(req.url ?? "");
    if (req.method !== "POST" || !route) return sendJson(res, 404, errorBody(20404, "The requested resource was not found", 404));
    if (!authenticated(req, credentials)) return sendJson(res, 401, errorBody(20003, "Authenticate", 401));
    if (decodeURIComponent(route[1]!) !== FAKE_ACCOUNT_SID) {
      return sendJson(res, 404, errorBody(20404, `The requested resource ${req.url} was not found`, 404));
    }
    // A body in another encoding is not read as parameters, so Twilio finds no `To`.
    if (!(req.headers["content-type"] ?? "").startsWith("application/x-www-form-urlencoded")) {
      return sendJson(res, 400, errorBody(21604, "A 'To' phone number is required.", 400));
    }
    const problem = formProblem(form, unsubscribed);
    if (problem) return sendJson(res, 400, errorBody(problem[0], problem[1], 400));
    const created = messageResource(FAKE_ACCOUNT_SID, form);
    sids.push(created.sid as string);
    sendJson(res, 201, created);
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    sids,
    script: (...more) => void faults.push(...more),
    reset: () => {
      requests.length = 0;
      faults.length = 0;
    },
    unsubscribed,
    credentials,
    violations,
    unchecked: typeof createMessage === "string" ? createMessage : undefined,
    assertConformant: () => {
      const found = violations.splice(0);
      if (found.length > 0) throw new Error(`requests the fake Twilio received violate Twilio's OpenAPI description:\n${found.join("\n")}`);
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
