import { Elysia } from "elysia";
import { documentedResponses, readErrors } from "../../http/error-model.ts";
import { type RawBody, type RawBodyLimits, readRawBody } from "../../http/raw-body.ts";
import { EMPTY_TWIML } from "./model.ts";
import {
  authorizeInboundParse,
  configuredProvider,
  type ProviderWebhookDeps,
  sendgridEvents,
  sendgridInbound,
  twilioInbound,
  twilioStatus,
} from "./service.ts";

/** Where the providers' webhooks live: they carry the provider's own proof instead of an API key or our signature. */
export const PROVIDER_WEBHOOK_PREFIXES = ["/api/webhooks/twilio/", "/api/webhooks/sendgrid/"] as const;

/** True for a path under the providers' webhooks (they read their own bodies and skip our webhook signature). */
export const isProviderWebhook = (path: string) => PROVIDER_WEBHOOK_PREFIXES.some((prefix) => path.startsWith(prefix));

const FORM = ["application/x-www-form-urlencoded"];
const MULTIPART = ["multipart/form-data"];
const JSON_TYPES = ["application/json"];

interface ParseContext {
  request: Request;
  server: { timeout(request: Request, seconds: number): void } | null;
  params: Record<string, string>;
}

/**
 * Twilio's and SendGrid's webhooks (issue 9). Each route reads its own body (http/raw-body.ts): the global JSON
 * parser steps aside for these paths only. Before any byte is read, the provider named in the path must be a
 * configured one of that kind (404), and for Inbound Parse the basic credentials must hold (401).
 */
export function providerWebhooksModule(deps: ProviderWebhookDeps, limits: RawBodyLimits) {
  const reader = (kind: "twilio" | "sendgrid", accepted: readonly string[], authorize?: (name: string, request: Request) => void) =>
    async function readProviderBody({ request, server, params }: ParseContext): Promise<RawBody> {
      const name = params.provider ?? "";
      configuredProvider(deps, kind, name);
      authorize?.(name, request);
      return readRawBody(request, server, limits, accepted);
    };
  const errors = documentedResponses(readErrors(400, 401, 404, 408, 413, 415, 503));
  const noContent = () => new Response(null, { status: 204 });

  return new Elysia({ name: "provider-webhooks", detail: { tags: ["Provider webhooks"] } })
    .post(
      "/api/webhooks/twilio/:provider/status",
      async ({ body, request, params }) => {
        await twilioStatus(deps, params.provider, request, body as RawBody);
        return noContent();
      },
      {
        parse: reader("twilio", FORM),
        detail: {
          responses: { 204: { description: "Applied, or nothing to apply" }, ...errors },
          summary: "Twilio message status callback",
          description:
            "Form-encoded, signed with X-Twilio-Signature (the account's auth token over MESSAGING_PUBLIC_URL + path + query and the sorted parameters). sent, delivered, undelivered and failed become delivery reports of the message with that MessageSid; other statuses change nothing.",
        },
      },
    )
    .post(
      "/api/webhooks/twilio/:provider/inbound",
      async ({ body, request, params }) => {
        await twilioInbound(deps, params.provider, request, body as RawBody);
        return new Response(EMPTY_TWIML, { headers: { "content-type": "text/xml; charset=utf-8" } });
      },
      {
        parse: reader("twilio", FORM),
        detail: {
          responses: { 200: { description: "Empty TwiML (text/xml)" }, ...errors },
          summary: "Twilio incoming message",
          description:
            "Form-encoded, signed as the status callback. Stored as an inbound sms (mms when NumMedia > 0, MediaUrl0… as attachments); a repeated MessageSid stores nothing. Answered with empty TwiML.",
        },
      },
    )
    .post(
      "/api/webhooks/sendgrid/:provider/events",
      async ({ body, request, params }) => {
        await sendgridEvents(deps, params.provider, request, body as RawBody);
        return noContent();
      },
      {
        parse: reader("sendgrid", JSON_TYPES),
        detail: {
          responses: { 204: { description: "Applied, or already seen" }, ...errors },
          summary: "SendGrid Event Webhook",
          description:
            "A JSON array of events, signed (ECDSA, X-Twilio-Email-Event-Webhook-Signature/-Timestamp) and verified with the provider's event_verification_key. delivered, bounce and dropped become delivery reports of the message whose X-Message-Id starts sg_message_id; a repeated sg_event_id is applied once.",
        },
      },
    )
    .post(
      "/api/webhooks/sendgrid/:provider/inbound",
      async ({ body, params }) => {
        await sendgridInbound(deps, params.provider, body as RawBody);
        return noContent();
      },
      {
        parse: reader("sendgrid", MULTIPART, (name, request) => authorizeInboundParse(deps, name, request)),
        detail: {
          responses: { 204: { description: "Stored, or already stored" }, ...errors },
          summary: "SendGrid Inbound Parse",
          description:
            "multipart/form-data as SendGrid posts it (not the raw MIME option), behind basic credentials: the provider's name and its parse_password. Stored as an inbound email; a repeated Message-ID stores nothing.",
        },
      },
    );
}
