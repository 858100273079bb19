/**
 * The SMTP provider: email through the operator's relay (their mail server, or a service's SMTP endpoint),
 * sent with nodemailer rather than SMTP written here: STARTTLS, AUTH, dot-stuffing, MIME and pooling are
 * nodemailer's, and this file only decides where to connect and what each answer means to the dispatcher.
 *
 * Where to connect: the relay's name is resolved and checked by `checkHost` (see `smtpHostCheck`) before
 * every connection, and nodemailer is given the checked IP, never the name, so a DNS answer that changes
 * after the check (rebinding) cannot send us to the private side. The name is still the TLS server name,
 * so the certificate is verified against it.
 *
 * What an answer means (SMTP reply codes, RFC 5321 §4.2.1):
 * - 2xx: accepted; the provider message id is our Message-ID (below).
 * - 4xx, and a connection that fails, closes or times out: transient, retried later.
 * - 5xx to the message (MAIL FROM, RCPT TO, DATA: a recipient that does not exist, content refused):
 *   permanent, with the server's reply text; so is an address or size nodemailer refuses before sending.
 * - 5xx to the session is transient instead: 503 (bad sequence of commands: a new connection can
 *   succeed), a failed AUTH (535 and kin) and a STARTTLS the relay refuses while `requireTls` is set.
 *   These are the operator's configuration or the relay's state, the same for every message: failing each
 *   message for good would lose them all until it is fixed, whereas a transient error retries them,
 *   counts against the circuit breaker and lets the dispatcher fail over to another provider.
 * - the relay's address refused by the address rules: permanent (retrying reaches the same address).
 *
 * From: the message's own `from`, with its display name (`Example <noreply@example.com>`), in the header and
 * as the envelope's MAIL FROM; which senders a relay may carry (its domain's SPF, DKIM, DMARC) is the provider's
 * `senders`, checked before the message is stored (src/providers/senders.ts). Nothing is rewritten. An HTML body
 * gets a plain-text alternative; attachments are fetched through the egress guard (attachments.ts).
 *
 * Message-ID: derived from the idempotency key alone, so every attempt at one message carries the same
 * Message-ID. SMTP has no idempotency key; a retry after a lost reply sends the message again, and a
 * receiver that deduplicates on Message-ID (many do, and mail clients thread by it) shows it once.
 */
import { lookup } from "node:dns/promises";
import { createHash } from "node:crypto";
import nodemailer from "nodemailer";
import type { Transporter } from "nodemailer";
import type SMTPTransport from "nodemailer/lib/smtp-transport";
import { canonicalAddress, classifyAddress } from "../../security/address-class.ts";
import { EgressRefusedError, type Resolver } from "../../security/egress.ts";
import type { AttachmentFetcher } from "../attachments.ts";
import { emailParts, emailRecipient, emailSender, emailSubject } from "../email-content.ts";
import {
  accepted,
  type OutboundMessage,
  permanentError,
  type Provider,
  type ProviderOutcome,
  type SendOptions,
  transientError,
  untilAborted,
} from "../provider.ts";

export interface SmtpOptions {
  host: string;
  port: number;
  /** Implicit TLS from the first byte (port 465). */
  secure: boolean;
  /** Refuse to send unless the server upgrades with STARTTLS (port 587); otherwise STARTTLS is used when offered. */
  requireTls?: boolean;
  user?: string;
  /**
   * Read for every send (for every new pool when pooled, and a pool is rebuilt after a failed AUTH), so a
   * rotated secret is used without a restart.
   */
  password?: () => string;
  /** The display name the provider's `senders` give an address, for a message whose `from` has none. */
  senderName?: (address: string) => string | undefined;
  /** Fetches attachments (through the egress guard, under the size cap); without one, attachments are refused. */
  attachments?: AttachmentFetcher;
  /** Keep connections open between sends (to one checked address at a time). */
  pool?: boolean;
  /** Extra trusted certificates (PEM), for a relay behind a private CA. */
  ca?: string;
  /** Time to connect and to receive the greeting; default 10 s. */
  connectionTimeoutMs?: number;
  /** Resolves the host through the address rules and returns the IP to connect to (see `smtpHostCheck`). */
  checkHost: (host: string) => Promise<string>;
}

/** Reply codes of a failed AUTH: a configuration problem, not a judgement on the message (see above). */
const AUTH_FAILURE_CODES = new Set([530, 534, 535, 538]);
const AUTH_FAILED = "SMTP authentication failed";

type SmtpTransporter = Transporter<SMTPTransport.SentMessageInfo, SMTPTransport.Options>;

export class SmtpProvider implements Provider {
  /** The pooled transporter and the address it is bound to, when `pool` is on. */
  private pooled?: { address: string; transporter: SmtpTransporter };

  constructor(
    readonly name: string,
    private readonly options: SmtpOptions,
  ) {}

  async send(message: OutboundMessage, { idempotencyKey, signal }: SendOptions): Promise<ProviderOutcome> {
    signal.throwIfAborted();
    let address: string;
    try {
      address = await untilAborted(this.options.checkHost(this.options.host), signal);
    } catch (error) {
      if (signal.aborted) throw error;
      return refusedHost(error);
    }
    let attachments: { filename: string; content: Buffer; contentType: string }[] = [];
    if (message.attachments.length > 0) {
      if (this.options.attachments === undefined) return permanentError("this SMTP provider has no way to fetch attachments");
      const fetched = await untilAborted(this.options.attachments.load(message.attachments), signal);
      if (!Array.isArray(fetched)) return fetched;
      attachments = fetched.map((f) => ({ filename: f.filename, content: Buffer.from(f.content), contentType: f.contentType }));
    }
    const sender = emailSender(message.from, this.options.senderName);
    const mail = {
      ...mailContent(message),
      from: sender.name === undefined ? sender.address : { name: sender.name, address: sender.address },
      to: emailRecipient(message.to),
      messageId: messageIdFor(idempotencyKey, addressDomain(sender.address)),
      ...(attachments.length > 0 ? { attachments } : {}),
    };
    let transporter: SmtpTransporter | undefined;
    try {
      transporter = this.transporterFor(address);
      const info = await untilAborted(transporter.sendMail(mail), signal);
      return accepted(info.messageId);
    } catch (error) {
      if (signal.aborted) throw error;
      const outcome = smtpFailure(error);
      // A pool keeps the password it was built with; drop it so the next send reads the current one.
      if (this.options.pool && outcome.kind === "transient_error" && outcome.reason.startsWith(AUTH_FAILED)) this.close();
      return outcome;
    } finally {
      // Unpooled, the connection is this send's alone; closing it also ends a send the signal gave up on.
      if (!this.options.pool) transporter?.close();
    }
  }

  /** Closes the pooled connections, if any. */
  close(): void {
    this.pooled?.transporter.close();
    this.pooled = undefined;
  }

  /** A new transporter per send, or the pooled one while the host still checks out to the same address. */
  private transporterFor(address: string): SmtpTransporter {
    if (!this.options.pool) return this.createTransporter(address);
    if (this.pooled?.address !== address) {
      this.pooled?.transporter.close();
      this.pooled = { address, transporter: this.createTransporter(address) };
    }
    return this.pooled.transporter;
  }

  private createTransporter(address: string): SmtpTransporter {
    const { host, port, secure, requireTls, user, password, pool, ca, connectionTimeoutMs = 10_000 } = this.options;
    const hostIsName = canonicalAddress(host) === undefined;
    // The certificate must name the host we were configured with, not the address we connect to.
    const tls = { ...(hostIsName ? { servername: host } : {}), ...(ca !== undefined ? { ca } : {}) };
    return nodemailer.createTransport({
      host: address,
      port,
      secure,
      requireTLS: requireTls ?? false,
      ...(user !== undefined ? { auth: { user, pass: password?.() ?? "" } } : {}),
      tls,
      pool: pool ?? false,
      connectionTimeout: connectionTimeoutMs,
      greetingTimeout: connectionTimeoutMs,
    });
  }
}

/**
 * A `checkHost` that applies the egress guard's address rules to an SMTP relay: the name is resolved once
 * and every answer must be a public address or one the operator allowed exactly (`allowAddresses`, e.g. a
 * relay on the private network, or 127.0.0.1 in tests); the first answer is the one to connect to. The
 * host allowlist and port rules of the egress guard are for HTTPS URLs and do not apply to a relay the
 * operator configured by hand.
 */
export function smtpHostCheck(options: { allowAddresses: readonly string[]; resolve?: Resolver }): (host: string) => Promise<string> {
  const allowed = new Set(options.allowAddresses.map((entry) => canonicalAddress(entry) ?? entry));
  const resolve = options.resolve ?? ((host: string) => lookup(host, { all: true }));
  return async (host) => {
    const literal = canonicalAddress(host);
    const answers = literal !== undefined ? [literal] : (await resolve(host)).map((answer) => canonicalAddress(answer.address));
    if (answers.length === 0 || answers.includes(undefined)) {
      throw new EgressRefusedError("resolve_failed", `${host} resolved to no usable address`, host);
    }
    for (const address of answers as string[]) {
      const kind = classifyAddress(address);
      if (kind !== "public" && !allowed.has(address)) {
        throw new EgressRefusedError("private_address", `${host} resolves to a ${kind} address`, address);
      }
    }
    return answers[0]!;
  };
}

/** Subject, and the body as `text`, or `html` with its `text` alternative (email-content.ts, shared with SendGrid). */
function mailContent(message: OutboundMessage): { subject: string; text: string; html?: string } {
  return { subject: emailSubject(message), ...emailParts(message.body) };
}

/**
 * `<key@domain>`: the key as is when it is made of characters a Message-ID may hold unquoted (our keys are,
 * `messaging-msg-<id>`), otherwise its SHA-256, so any key still gives one stable, valid Message-ID.
 */
export function messageIdFor(idempotencyKey: string, domain: string): string {
  const local = /^[A-Za-z0-9._-]{1,128}$/.test(idempotencyKey) ? idempotencyKey : createHash("sha256").update(idempotencyKey).digest("hex");
  return `<${local}@${domain}>`;
}

/** The domain of `a@b.example` or `Name <a@b.example>`; `localhost` when there is none. */
function addressDomain(from: string): string {
  const domain = from.slice(from.lastIndexOf("@") + 1).replace(/>.*$/, "").trim();
  return from.includes("@") && /^[A-Za-z0-9.-]+$/.test(domain) ? domain : "localhost";
}

/** Why the relay could not be used: refused by the address rules is permanent, a failed lookup transient. */
function refusedHost(error: unknown): ProviderOutcome {
  if (error instanceof EgressRefusedError && (error.reason === "private_address" || error.reason === "host_not_allowed")) {
    return permanentError(`SMTP relay refused: ${error.message}`);
  }
  return transientError(`SMTP relay did not resolve: ${errorMessage(error)}`);
}

interface SmtpError {
  code?: string;
  command?: string;
  response?: string;
  responseCode?: number;
}

/** nodemailer's codes for a failure about this message: its envelope (MAIL FROM, RCPT TO) or its content. */
const MESSAGE_FAILURES = new Set(["EENVELOPE", "EMESSAGE"]);

/** Maps a nodemailer failure onto an outcome (see the file comment). */
function smtpFailure(error: unknown): ProviderOutcome {
  const { code = "", command, response, responseCode } = (typeof error === "object" && error !== null ? error : {}) as SmtpError;
  const reply = response ?? errorMessage(error);
  if (code === "EAUTH" || (responseCode !== undefined && AUTH_FAILURE_CODES.has(responseCode))) {
    return transientError(`${AUTH_FAILED}: ${reply}`, responseCode);
  }
  if (MESSAGE_FAILURES.has(code)) {
    // Refused by nodemailer before anything was sent (an address it cannot use, a message over SIZE).
    if (responseCode === undefined && command === "API") return permanentError(`SMTP ${code}: ${reply}`);
    if (responseCode !== undefined && responseCode >= 500 && responseCode < 600 && responseCode !== 503) return permanentError(reply, responseCode);
  }
  return transientError(responseCode === undefined ? `SMTP ${code || "error"}: ${reply}` : reply, responseCode);
}

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
