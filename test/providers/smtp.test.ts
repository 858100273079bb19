import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";
import { deliveryIdempotencyKey, type OutboundMessage } from "../../src/providers/provider.ts";
import { looksLikeHtml } from "../../src/providers/email-content.ts";
import { messageIdFor, SmtpProvider, smtpHostCheck, type SmtpOptions } from "../../src/providers/smtp/adapter.ts";
import { EgressRefusedError } from "../../src/security/egress.ts";
import { freePort } from "../helpers/ports.ts";

const USER = "relay-user";
const PASSWORD = "correct horse battery staple";

/** What the local SMTP server saw of one accepted message. */
interface Received {
  authMethod: string | undefined;
  user: string | undefined;
  mailFrom: string;
  rcptTo: string[];
  headers: Map<string, string>;
  body: string;
}

/** A reply the server gives instead of accepting: an SMTP error with a reply code. */
const smtpReply = (responseCode: number, text: string) => Object.assign(new Error(text), { responseCode });

interface ServerBehaviour {
  authMethods?: string[];
  /** The reply to RCPT TO for this recipient, or undefined to accept it. */
  rcpt?: (address: string) => Error | undefined;
  /** The reply at the end of DATA, or undefined to accept the message. */
  data?: () => Error | undefined;
}

interface LocalSmtp {
  port: number;
  received: Received[];
  connections: number;
  authAttempts: number;
}

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** A real SMTP server on 127.0.0.1 (no TLS) that requires AUTH with USER / PASSWORD and records what it received. */
async function startSmtp(behaviour: ServerBehaviour = {}): Promise<LocalSmtp> {
  const state: LocalSmtp = { port: 0, received: [], connections: 0, authAttempts: 0 };
  const server = new SMTPServer({
    authMethods: behaviour.authMethods ?? ["PLAIN", "LOGIN"],
    allowInsecureAuth: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onConnect(_session, callback) {
      state.connections += 1;
      callback();
    },
    onAuth(auth, _session, callback) {
      state.authAttempts += 1;
      if (auth.username === USER && auth.password === PASSWORD) callback(null, { user: `${auth.method}:${auth.username}` });
      else callback(smtpReply(535, "5.7.8 Authentication credentials invalid"));
    },
    onRcptTo(address, _session, callback) {
      callback(behaviour.rcpt?.(address.address) ?? null);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const refusal = behaviour.data?.();
        if (refusal) return callback(refusal);
        const [method, user] = String(session.user ?? "").split(":");
        const mailFrom = session.envelope.mailFrom;
        state.received.push({
          authMethod: method || undefined,
          user: user || undefined,
          mailFrom: mailFrom ? mailFrom.address : "",
          rcptTo: session.envelope.rcptTo.map((rcpt) => rcpt.address),
          ...parseMessage(Buffer.concat(chunks).toString("utf8")),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.port = (server.server.address() as AddressInfo).port;
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return state;
}

/** Headers (unfolded, names lower-cased) and body of a received RFC 5322 message. */
function parseMessage(raw: string): { headers: Map<string, string>; body: string } {
  const split = raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, " ");
  const headers = new Map<string, string>();
  for (const line of head.split("\r\n")) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { headers, body: raw.slice(split + 4) };
}

/** A TCP server that accepts connections and never says anything (no SMTP greeting). */
async function startSilent(): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => sockets.add(socket));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

/**
 * Implicit TLS in front of a plain local SMTP server, recording the server name (SNI) each client asked
 * for. (smtp-server's own TLS does not complete a handshake under Bun, so TLS is terminated here.)
 */
async function startTlsTerminator(identity: { key: string; cert: string }, smtpPort: number): Promise<{ port: number; serverNames: (string | false | null)[] }> {
  const serverNames: (string | false | null)[] = [];
  const sockets = new Set<Socket>();
  const server = createTlsServer(identity, (socket) => {
    serverNames.push(socket.servername);
    const upstream = connect(smtpPort, "127.0.0.1");
    for (const end of [socket, upstream]) {
      sockets.add(end);
      end.on("error", () => {});
    }
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as AddressInfo).port, serverNames };
}

/** A self-signed certificate (its own CA) for `name`, made with openssl for this run. */
const certDir = mkdtempSync(join(tmpdir(), "smtp-test-"));
afterAll(() => rmSync(certDir, { recursive: true, force: true }));
function selfSigned(name: string): { key: string; cert: string } {
  const key = join(certDir, `${name}.key`);
  const cert = join(certDir, `${name}.pem`);
  const made = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${name}`,
    "-addext", `subjectAltName=DNS:${name}`, "-keyout", key, "-out", cert]);
  if (made.exitCode !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`);
  return { key: readFileSync(key, "utf8"), cert: readFileSync(cert, "utf8") };
}

const allowLoopback = smtpHostCheck({ allowAddresses: ["127.0.0.1"] });

function provider(port: number, options: Partial<SmtpOptions> = {}): SmtpProvider {
  const smtp = new SmtpProvider("email-smtp", {
    host: "127.0.0.1",
    port,
    secure: false,
    user: USER,
    password: () => PASSWORD,
    connectionTimeoutMs: 2_000,
    checkHost: allowLoopback,
    ...options,
  });
  closers.push(() => smtp.close());
  return smtp;
}

const email = (overrides: Partial<OutboundMessage> = {}): OutboundMessage => ({
  id: "42",
  channel: "email",
  from: "Notifications <notify@example.com>",
  to: "alice@example.org",
  body: "Your order has shipped.",
  attachments: [],
  ...overrides,
});

const send = (smtp: SmtpProvider, message: OutboundMessage = email(), signal = new AbortController().signal) =>
  smtp.send(message, { idempotencyKey: deliveryIdempotencyKey(message.id), signal });

describe("SmtpProvider against a real SMTP server", () => {
  test("sends a text message with AUTH PLAIN: envelope, headers and body as received", async () => {
    const server = await startSmtp();
    const outcome = await send(provider(server.port), email({ subject: "Shipped" }));

    expect(outcome).toEqual({ kind: "accepted", providerMessageId: "<messaging-msg-42@example.com>" });
    expect(server.received).toHaveLength(1);
    const [mail] = server.received;
    expect(mail!.authMethod).toBe("PLAIN");
    expect(mail!.user).toBe(USER);
    expect(mail!.mailFrom).toBe("notify@example.com");
    expect(mail!.rcptTo).toEqual(["alice@example.org"]);
    expect(mail!.headers.get("from")).toBe("Notifications <notify@example.com>");
    expect(mail!.headers.get("to")).toBe("alice@example.org");
    expect(mail!.headers.get("subject")).toBe("Shipped");
    expect(mail!.headers.get("message-id")).toBe("<messaging-msg-42@example.com>");
    expect(mail!.headers.get("content-type")).toStartWith("text/plain");
    expect(mail!.body.trimEnd()).toBe("Your order has shipped.");
  });

  test("authenticates with AUTH LOGIN when that is all the server offers", async () => {
    const server = await startSmtp({ authMethods: ["LOGIN"] });
    expect((await send(provider(server.port))).kind).toBe("accepted");
    expect(server.received[0]!.authMethod).toBe("LOGIN");
  });

  test("sends a body that starts with a tag and closes one as HTML, with a plain-text alternative", async () => {
    const server = await startSmtp();
    const html = "<p>Your order has <b>shipped</b>.</p>";
    expect((await send(provider(server.port), email({ body: html, subject: "Shipped" }))).kind).toBe("accepted");
    const [mail] = server.received;
    expect(mail!.headers.get("content-type")).toStartWith("multipart/alternative");
    expect(mail!.body).toContain("Content-Type: text/plain");
    expect(mail!.body).toContain("Your order has shipped.\r\n");
    expect(mail!.body).toContain("Content-Type: text/html");
    expect(mail!.body).toContain(html);
  });

  test("the message's own sender, never rewritten: a bare address in MAIL FROM and From, the relay's senders naming it", async () => {
    const server = await startSmtp();
    const outcome = await send(provider(server.port, { senderName: (a) => (a === "billing@example.net" ? "Billing" : undefined) }), email({ from: "billing@example.net" }));
    expect(outcome).toEqual({ kind: "accepted", providerMessageId: "<messaging-msg-42@example.net>" });
    expect(server.received[0]!.mailFrom).toBe("billing@example.net");
    expect(server.received[0]!.headers.get("from")).toBe("Billing <billing@example.net>");
  });

  test("an HTML body without a subject: the subject is its text, entities decoded", async () => {
    const server = await startSmtp();
    expect((await send(provider(server.port), email({ body: "<p>Caf&eacute; &amp; <b>bar</b></p>" }))).kind).toBe("accepted");
    expect(server.received[0]!.headers.get("subject")).toBe("=?UTF-8?Q?Caf=C3=A9_=26_bar?=");
  });

  test("sends a body that starts with < but closes no tag as text", async () => {
    const server = await startSmtp();
    expect((await send(provider(server.port), email({ body: "<3 see you at 5" }))).kind).toBe("accepted");
    expect(server.received[0]!.headers.get("content-type")).toStartWith("text/plain");
    expect(server.received[0]!.body.trimEnd()).toBe("<3 see you at 5");
  });

  test("without a subject, uses the body's first 78 characters on one line", async () => {
    const server = await startSmtp();
    const body = `Line one\r\nline two ${"x".repeat(100)}`;
    expect((await send(provider(server.port), email({ body }))).kind).toBe("accepted");
    const subject = server.received[0]!.headers.get("subject")!;
    expect(subject).toBe(`Line one line two ${"x".repeat(60)}`);
    expect(subject).toHaveLength(78);
  });

  test("the same idempotency key sends the same Message-ID twice; another key another one", async () => {
    const server = await startSmtp();
    const smtp = provider(server.port);
    const first = await send(smtp, email({ id: "7" }));
    const retry = await send(smtp, email({ id: "7" }));
    const other = await send(smtp, email({ id: "8" }));
    const ids = server.received.map((mail) => mail.headers.get("message-id"));
    expect(ids).toEqual(["<messaging-msg-7@example.com>", "<messaging-msg-7@example.com>", "<messaging-msg-8@example.com>"]);
    expect(first).toEqual(retry);
    expect(other).not.toEqual(first);
  });

  test("a pooled provider sends several messages over one connection", async () => {
    const server = await startSmtp();
    const smtp = provider(server.port, { pool: true });
    for (const id of ["1", "2", "3"]) expect((await send(smtp, email({ id }))).kind).toBe("accepted");
    expect(server.received).toHaveLength(3);
    expect(server.connections).toBe(1);
  });

  test("a recipient refused with 550 is a permanent error with the server's reply", async () => {
    const server = await startSmtp({ rcpt: () => smtpReply(550, "5.1.1 No such user here") });
    const outcome = await send(provider(server.port));
    expect(outcome.kind).toBe("permanent_error");
    expect(outcome).toMatchObject({ status: 550 });
    expect(outcome.kind === "permanent_error" && outcome.reason).toContain("No such user here");
    expect(server.received).toHaveLength(0);
  });

  test("a message refused at the end of DATA with 554 is a permanent error", async () => {
    const server = await startSmtp({ data: () => smtpReply(554, "5.6.0 Message content rejected") });
    const outcome = await send(provider(server.port));
    expect(outcome).toMatchObject({ kind: "permanent_error", status: 554 });
    expect(outcome.kind === "permanent_error" && outcome.reason).toContain("Message content rejected");
  });

  test("a recipient nodemailer cannot use is a permanent error, and nothing reaches the server", async () => {
    const server = await startSmtp();
    const outcome = await send(provider(server.port), email({ to: "" }));
    expect(outcome.kind).toBe("permanent_error");
    expect(outcome.kind === "permanent_error" && outcome.reason).toContain("EENVELOPE");
    expect(server.received).toHaveLength(0);
  });

  test("a recipient deferred with 451 is a transient error", async () => {
    const server = await startSmtp({ rcpt: () => smtpReply(451, "4.3.0 Try again later") });
    const outcome = await send(provider(server.port));
    expect(outcome).toMatchObject({ kind: "transient_error", status: 451 });
    expect(outcome.kind === "transient_error" && outcome.reason).toContain("Try again later");
  });

  test("a wrong password (535) is transient: the operator's mistake must not fail the message for good", async () => {
    const server = await startSmtp();
    const outcome = await send(provider(server.port, { password: () => "wrong" }));
    expect(outcome).toMatchObject({ kind: "transient_error", status: 535 });
    expect(outcome.kind === "transient_error" && outcome.reason).toContain("authentication failed");
    expect(server.received).toHaveLength(0);
  });

  test("reads the password at each connection, so a rotated secret is used", async () => {
    const server = await startSmtp();
    let password = "old";
    const smtp = provider(server.port, { password: () => password });
    expect((await send(smtp)).kind).toBe("transient_error");
    password = PASSWORD;
    expect((await send(smtp)).kind).toBe("accepted");
  });

  test("a pool rebuilt after a failed AUTH uses the rotated password", async () => {
    const server = await startSmtp();
    let password = "old";
    const smtp = provider(server.port, { pool: true, password: () => password });
    expect((await send(smtp)).kind).toBe("transient_error");
    password = PASSWORD;
    expect((await send(smtp)).kind).toBe("accepted");
  });

  test("a refused connection (closed port) is a transient error", async () => {
    const outcome = await send(provider(await freePort()));
    expect(outcome.kind).toBe("transient_error");
  });

  test("a server that never greets is a transient error after the connection timeout", async () => {
    const started = Date.now();
    const outcome = await send(provider(await startSilent(), { connectionTimeoutMs: 200 }));
    expect(outcome.kind).toBe("transient_error");
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  test("rejects, rather than answering, when the call is aborted", async () => {
    const controller = new AbortController();
    const reason = new Error("timed out");
    setTimeout(() => controller.abort(reason), 50);
    const smtp = provider(await startSilent(), { connectionTimeoutMs: 5_000 });
    await expect(send(smtp, email(), controller.signal)).rejects.toBe(reason);
  });

  test("connects to the checked address of a host name (the name itself does not resolve)", async () => {
    const server = await startSmtp();
    const asked: string[] = [];
    const checkHost = smtpHostCheck({
      allowAddresses: ["127.0.0.1"],
      resolve: async (host) => (asked.push(host), [{ address: "127.0.0.1", family: 4 }]),
    });
    const outcome = await send(provider(server.port, { host: "relay.invalid", checkHost }));
    expect(outcome.kind).toBe("accepted");
    expect(asked).toEqual(["relay.invalid"]);
    expect(server.received).toHaveLength(1);
  });

  test("a host that resolves to a private address without being allowed is refused, permanently, before connecting", async () => {
    const server = await startSmtp();
    const checkHost = smtpHostCheck({ allowAddresses: [], resolve: async () => [{ address: "127.0.0.1", family: 4 }] });
    const outcome = await send(provider(server.port, { host: "relay.invalid", checkHost }));
    expect(outcome.kind).toBe("permanent_error");
    expect(outcome.kind === "permanent_error" && outcome.reason).toContain("loopback");
    expect(server.connections).toBe(0);
  });

  test("a host that does not resolve is a transient error", async () => {
    const checkHost = smtpHostCheck({ allowAddresses: [], resolve: async () => Promise.reject(new Error("ENOTFOUND")) });
    const outcome = await send(provider(await freePort(), { host: "relay.invalid", checkHost }));
    expect(outcome.kind).toBe("transient_error");
  });
});

describe("SmtpProvider over TLS to a relay named relay.test (checked to 127.0.0.1)", () => {
  const relay = selfSigned("relay.test");
  const impostor = selfSigned("other.test");
  const relayCheck = smtpHostCheck({ allowAddresses: ["127.0.0.1"], resolve: async () => [{ address: "127.0.0.1", family: 4 }] });
  const overTls = (port: number, options: Partial<SmtpOptions>) => provider(port, { host: "relay.test", checkHost: relayCheck, ca: relay.cert, ...options });

  test("implicit TLS asks for and verifies the host name, though the connection goes to the checked IP", async () => {
    const server = await startSmtp();
    const tls = await startTlsTerminator(relay, server.port);
    expect((await send(overTls(tls.port, { secure: true }))).kind).toBe("accepted");
    expect(tls.serverNames).toEqual(["relay.test"]);
    expect(server.received).toHaveLength(1);
  });

  test("a certificate for another name is refused: transient, and nothing is sent", async () => {
    const server = await startSmtp();
    const tls = await startTlsTerminator(impostor, server.port);
    const outcome = await send(overTls(tls.port, { secure: true, ca: `${relay.cert}${impostor.cert}` }));
    expect(outcome.kind).toBe("transient_error");
    expect(server.authAttempts).toBe(0);
    expect(server.received).toHaveLength(0);
  });

  test("a certificate from an untrusted issuer is refused: transient, and nothing is sent", async () => {
    const server = await startSmtp();
    const tls = await startTlsTerminator(relay, server.port);
    const outcome = await send(overTls(tls.port, { secure: true, ca: impostor.cert }));
    expect(outcome.kind).toBe("transient_error");
    expect(server.received).toHaveLength(0);
  });

  test("requireTls against a relay without STARTTLS is transient (a relay problem), and the password is never sent", async () => {
    const server = await startSmtp();
    const outcome = await send(overTls(server.port, { secure: false, requireTls: true }));
    expect(outcome.kind).toBe("transient_error");
    expect(server.authAttempts).toBe(0);
    expect(server.received).toHaveLength(0);
  });
});

describe("smtpHostCheck", () => {
  const resolvingTo = (...addresses: string[]) => async () => addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));

  test.each<[string, string, string[], string[], string | null]>([
    ["a public address passes", "smtp.example", ["93.184.215.14"], [], "93.184.215.14"],
    ["the first of several public answers is used", "smtp.example", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"], [], "93.184.215.14"],
    ["a private answer among public ones is refused", "smtp.example", ["93.184.215.14", "10.0.0.5"], [], null],
    ["a private answer allowed exactly passes", "smtp.internal", ["10.0.0.5"], ["10.0.0.5"], "10.0.0.5"],
    ["another private address than the allowed one is refused", "smtp.internal", ["10.0.0.6"], ["10.0.0.5"], null],
    ["the metadata service is refused", "smtp.example", ["169.254.169.254"], [], null],
    ["loopback written as IPv4-mapped IPv6 is refused", "smtp.example", ["::ffff:127.0.0.1"], [], null],
    ["an IP literal host is checked without resolving", "127.0.0.1", [], ["127.0.0.1"], "127.0.0.1"],
    ["an IP literal loopback not allowed is refused", "127.0.0.1", [], [], null],
    ["an allowed IPv6 address matches in any spelling", "smtp.internal", ["fd00:0:0::1"], ["fd00::1"], "fd00::1"],
  ])("%s", async (_name, host, answers, allowAddresses, expected) => {
    const check = smtpHostCheck({ allowAddresses, resolve: resolvingTo(...answers) });
    if (expected === null) await expect(check(host)).rejects.toBeInstanceOf(EgressRefusedError);
    else expect(await check(host)).toBe(expected);
  });

  test("a name with no answers is refused as unresolved", async () => {
    const check = smtpHostCheck({ allowAddresses: [], resolve: resolvingTo() });
    await expect(check("smtp.example")).rejects.toMatchObject({ reason: "resolve_failed" });
  });
});

describe("message content rules", () => {
  test.each<[string, boolean]>([
    ["<p>hi</p>", true],
    ["  \n<html><body>hi</body></html>", true],
    ["<3 see you", false],
    ["hello <b>there</b>", false],
    ["<br>", false],
    ["plain text", false],
  ])("looksLikeHtml(%j) is %p", (body, expected) => {
    expect(looksLikeHtml(body)).toBe(expected);
  });

  test("a key a Message-ID cannot hold unquoted is hashed, stably", () => {
    const id = messageIdFor("key with spaces <and> @", "example.com");
    expect(id).toMatch(/^<[0-9a-f]{64}@example\.com>$/);
    expect(messageIdFor("key with spaces <and> @", "example.com")).toBe(id);
    expect(messageIdFor("another key!", "example.com")).not.toBe(id);
  });

  test("a safe key is kept readable", () => {
    expect(messageIdFor("messaging-msg-123", "mail.example.com")).toBe("<messaging-msg-123@mail.example.com>");
  });
});
