import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { loadOperation } from "../helpers/openapi.ts";

/**
 * A fake SendGrid v3 Mail Send API on loopback, speaking the documented wire format over real HTTP: a Bearer key,
 * a JSON body with `personalizations[].to[].email`, `from.email`, `subject` and `content[]`, answered 202 with an
 * `X-Message-Id`, or an error status with `{"errors": [{"field", "message", "help"}]}`. The error texts paraphrase
 * SendGrid's; what the adapter relies on is their shape, not their words. Faults are scripted per request.
 */

export type SendGridFault =
  | { kind: "rate_limited"; resetSecs: string | null }
  | { kind: "server_error"; status?: number }
  | { kind: "garbage"; status: number; body: string; headers?: Record<string, string> }
  | { kind: "slow"; ms: number }
  | { kind: "reset" };

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export interface FakeSendGridOptions {
  apiKey: string;
  /** Sender identities the account has verified; any other `from` is answered 403 as SendGrid does. */
  verifiedSenders: string[];
  /** SendGrid's limit is 30 MB for the whole message; tests set a small one. */
  maxBodyBytes?: number;
}

export interface FakeSendGrid {
  port: number;
  baseUrl: string;
  requests: RecordedRequest[];
  /** The X-Message-Ids answered so far, in order. */
  messageIds: string[];
  /** Answers the next requests with these faults, one each, before behaving normally again. */
  script(...faults: SendGridFault[]): void;
  /**
   * Every way a request to /v3/mail/send departed from SendGrid's own OpenAPI description (../shared/specs/), each
   * prefixed with the request's number; `assertConformant()` fails the test on any and clears them.
   */
  violations: string[];
  /** Why requests are not checked against the description (it is absent), or undefined when they are. */
  unchecked: string | undefined;
  assertConformant(): void;
  close(): Promise<void>;
}

/** SendGrid's description of Mail Send (its header parameters and JSON body), shared by every fake. */
const mailSend = loadOperation("tsg_mail_v3.json", "/v3/mail/send", "post");

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

type FieldError = { field: string | null; message: string; help?: string | null };

const errorBody = (...errors: FieldError[]) => JSON.stringify({ errors: errors.map((e) => ({ help: null, ...e })) });

/** 22 characters from the base64url alphabet, like the ids SendGrid answers with. */
const messageId = () => randomBytes(16).toString("base64url").slice(0, 22);

/** What is wrong with a Mail Send body, in SendGrid's error-list form; empty when nothing is. */
function problemsOf(mail: unknown): FieldError[] {
  if (typeof mail !== "object" || mail === null || Array.isArray(mail)) return [{ field: null, message: "Bad Request" }];
  const m = mail as Record<string, unknown>;
  const problems: FieldError[] = [];
  const personalizations = m.personalizations;
  if (!Array.isArray(personalizations) || personalizations.length === 0) {
    problems.push({ field: "personalizations", message: "The personalizations field is required and must have at least one personalization." });
  } else {
    personalizations.forEach((p: { to?: unknown }, i) => {
      if (!Array.isArray(p?.to) || p.to.length === 0) problems.push({ field: `personalizations.${i}.to`, message: "The to array is required for all personalization objects, and must have at least one email object with a valid email address." });
      else p.to.forEach((to: { email?: unknown }, j) => {
        if (typeof to?.email !== "string" || !EMAIL.test(to.email)) problems.push({ field: `personalizations.${i}.to.${j}.email`, message: "Does not contain a valid address." });
      });
    });
  }
  const from = m.from as { email?: unknown } | undefined;
  if (typeof from?.email !== "string" || !EMAIL.test(from.email)) problems.push({ field: "from.email", message: "The from email does not contain a valid address." });
  if (typeof m.subject !== "string" || m.subject === "") problems.push({ field: "subject", message: "The subject is required." });
  const content = m.content;
  if (!Array.isArray(content) || content.length === 0) problems.push({ field: "content", message: "Unless a valid template_id is provided, the content parameter is required." });
  else content.forEach((c: { type?: unknown; value?: unknown }, i) => {
    if (typeof c?.type !== "string" || c.type === "") problems.push({ field: `content.${i}.type`, message: "The content type cannot contain ';', or CRLF characters, and must be at least 1 character." });
    if (typeof c?.value !== "string" || c.value === "") problems.push({ field: `content.${i}.value`, message: "The content value must be a string at least one character in length." });
  });
  return problems;
}

export async function startFakeSendGrid(options: FakeSendGridOptions): Promise<FakeSendGrid> {
  const requests: RecordedRequest[] = [];
  const messageIds: string[] = [];
  const faults: SendGridFault[] = [];
  const violations: string[] = [];
  const maxBodyBytes = options.maxBodyBytes ?? 30 * 1024 * 1024;

  function answer(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse, body: string, bytes: number) {
    const fault = faults.shift();
    if (fault?.kind === "reset") return void req.socket.destroy();
    if (fault?.kind === "slow") await Bun.sleep(fault.ms);
    if (fault?.kind === "rate_limited") {
      const reset: Record<string, string> = fault.resetSecs === null ? {} : { "x-ratelimit-reset": fault.resetSecs };
      return answer(res, 429, errorBody({ field: null, message: "too many requests" }), { "x-ratelimit-limit": "600", "x-ratelimit-remaining": "0", ...reset });
    }
    if (fault?.kind === "server_error") return answer(res, fault.status ?? 500, errorBody({ field: null, message: "internal error" }));
    if (fault?.kind === "garbage") return answer(res, fault.status, fault.body, fault.headers);
    if (req.method !== "POST" || req.url !== "/v3/mail/send") return answer(res, 404, errorBody({ field: null, message: "not found" }));
    const auth = req.headers.authorization;
    if (auth === undefined) return answer(res, 401, errorBody({ field: null, message: "authorization required" }));
    if (auth !== `Bearer ${options.apiKey}`) return answer(res, 401, errorBody({ field: null, message: "The provided authorization grant is invalid, expired, or revoked" }));
    if (bytes > maxBodyBytes) return answer(res, 413, errorBody({ field: null, message: "The JSON payload you have included in your request is too large." }));
    if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) return answer(res, 415, errorBody({ field: null, message: "Content-Type should be application/json." }));
    let mail: unknown;
    try {
      mail = JSON.parse(body);
    } catch {
      return answer(res, 400, errorBody({ field: null, message: "Bad Request" }));
    }
    const problems = problemsOf(mail);
    if (problems.length > 0) return answer(res, 400, errorBody(...problems));
    const from = (mail as { from: { email: string } }).from.email;
    if (!options.verifiedSenders.includes(from)) {
      return answer(res, 403, errorBody({ field: "from", message: "The from address does not match a verified Sender Identity." }));
    }
    const id = messageId();
    messageIds.push(id);
    res.writeHead(202, { "x-message-id": id });
    res.end();
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const raw = Buffer.concat(chunks);
      const body = raw.toString("utf8");
      requests.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
      if (typeof mailSend !== "string" && req.method === "POST" && req.url === "/v3/mail/send") {
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = body;
        }
        violations.push(...mailSend.violations({ headers: req.headers, json }).map((v) => `request ${requests.length}: ${v}`));
      }
      handle(req, res, body, raw.byteLength).catch(() => req.socket.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    messageIds,
    script: (...next) => void faults.push(...next),
    violations,
    unchecked: typeof mailSend === "string" ? mailSend : undefined,
    assertConformant: () => {
      const found = violations.splice(0);
      if (found.length > 0) throw new Error(`requests the fake SendGrid received violate SendGrid's OpenAPI description:\n${found.join("\n")}`);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
