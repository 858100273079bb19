/**
 * SendGrid Inbound Parse: emails posted as multipart forms, behind the basic credentials of the configured Parse
 * URL (SendGrid does not sign them), stored as inbound emails once per Message-ID.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { emailAddressProblem } from "../../domain/address.ts";
import { formatTimestamp } from "../../domain/timestamp.ts";
import { AppError, validationFailed } from "../../http/errors.ts";
import type { RawBody } from "../../http/raw-body.ts";
import { receiveMessage } from "../messages/service.ts";
import { firstMailbox, MESSAGE_ID_MAX, messageIdOf } from "./inbound-email.ts";
import { sendgridInboundSchema } from "./model.ts";
import { configuredProvider, counted, nowSecs, type ProviderWebhookDeps, refused, validated, verifyingCredentials } from "./webhook.ts";

/** The basic credentials of a request, or undefined when it has none that parse. */
function basicCredentials(header: string | null): { user: string; password: string } | undefined {
  const match = header && header.length <= 1024 ? /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(header) : null;
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

const sameText = (a: string, b: string) => {
  const x = createHash("sha256").update(a).digest();
  const y = createHash("sha256").update(b).digest();
  return timingSafeEqual(x, y);
};

/**
 * SendGrid does not sign Inbound Parse posts, so the Parse URL carries basic credentials: the provider's name as
 * user, and any `parse_password` still in its rotation overlap. Checked before the body is read.
 */
export function authorizeInboundParse(deps: ProviderWebhookDeps, name: string, request: Request): void {
  configuredProvider(deps, "sendgrid", name);
  const challenge = { "www-authenticate": `Basic realm="messaging ${name}"` };
  const message = "Inbound Parse needs the basic credentials of its configured URL";
  const fail = (detail: string) => {
    deps.metrics.providerWebhooks.inc({ provider: name, kind: "sendgrid_inbound", outcome: "unauthorized" });
    return refused(message, `provider ${name}: ${detail}`, challenge);
  };
  const passwords = verifyingCredentials(deps, name, "parse_password");
  if (passwords.length === 0) throw fail("no parse_password is stored, so no Inbound Parse post can be accepted");
  const given = basicCredentials(request.headers.get("authorization"));
  if (!given) throw fail("Inbound Parse post without basic credentials");
  let matched = false;
  for (const password of passwords) if (password !== "" && sameText(password, given.password)) matched = true;
  if (!matched || given.user !== name) throw fail("Inbound Parse post with wrong basic credentials");
}

/** The string fields of a multipart body (files, i.e. attachments, are left out), or a 400 when it does not parse. */
async function multipartFields(body: RawBody): Promise<Record<string, string>> {
  let form: Awaited<ReturnType<Response["formData"]>>;
  try {
    form = await new Response(body.bytes, { headers: { "content-type": body.contentType } }).formData();
  } catch {
    throw new AppError("bad_request", "request body is not valid multipart/form-data");
  }
  // A Map, then own properties: a field named like an Object.prototype member is just a field.
  const fields = new Map<string, string>();
  form.forEach((value, field) => {
    if (typeof value === "string" && !fields.has(field)) fields.set(field, value);
  });
  return Object.fromEntries(fields);
}

/** An address taken from a header field, or a 400 naming the field when it is none or not a usable one. */
function mailbox(field: string, address: string | undefined): string {
  const problem = address === undefined ? "names no email address" : emailAddressProblem(address);
  if (problem) throw validationFailed([{ path: field, message: problem }]);
  return address!;
}

/** The envelope's first recipient, for mail whose `To` names none of ours (Bcc, a list). */
function envelopeRecipient(envelope: string | undefined): string | undefined {
  if (envelope === undefined) return undefined;
  try {
    const to = (JSON.parse(envelope) as { to?: unknown }).to;
    return Array.isArray(to) && typeof to[0] === "string" ? to[0] : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The id an inbound email is deduplicated by: its Message-ID header. A message without one (rare; most mail
 * servers add it) is named by a hash of its header block instead, which SendGrid repeats verbatim on a retry.
 */
function inboundEmailId(fields: { headers: string }, raw: Uint8Array): string {
  const id = messageIdOf(fields.headers);
  if (id !== undefined && id.length <= MESSAGE_ID_MAX) return id;
  const basis = id ?? (fields.headers === "" ? raw : fields.headers);
  return `sha256:${createHash("sha256").update(basis).digest("hex")}`;
}

/**
 * An Inbound Parse post (authorized by authorizeInboundParse): an inbound email from the first mailbox of `from`
 * to the first of `to` (or of the envelope), its text part as the body (the HTML part when there is no text),
 * its subject kept; a Message-ID seen before stores nothing.
 */
export function sendgridInbound(deps: ProviderWebhookDeps, name: string, body: RawBody): Promise<void> {
  configuredProvider(deps, "sendgrid", name);
  return counted(deps, name, "sendgrid_inbound", async () => {
    const fields = validated(sendgridInboundSchema, await multipartFields(body));
    const from = mailbox("from", firstMailbox(fields.from));
    const to = mailbox("to", firstMailbox(fields.to) ?? envelopeRecipient(fields.envelope));
    const result = await receiveMessage(deps.messages, {
      channel: "email",
      from,
      to,
      body: fields.text !== "" ? fields.text : fields.html,
      subject: fields.subject,
      attachments: [],
      timestamp: formatTimestamp(new Date(nowSecs(deps) * 1000)),
      providerMessageId: inboundEmailId(fields, body.bytes),
    });
    return [result.body.duplicate ? "duplicate" : "accepted", undefined];
  });
}
