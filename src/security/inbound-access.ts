/**
 * Who may write through the generic inbound webhooks (/api/webhooks/sms|email) and the mock provider's injection,
 * in words: `check` reports it and `serve` warns when anyone at all may (SPEC §8). The rule itself lives in
 * http/auth.ts (the `inbound` scope, or a signature standing in for it) and http/webhook-signature.ts.
 */
export interface InboundAccess {
  /** True when a request with neither key nor signature is stored: only with auth off and no webhook secret. */
  openToAnyone: boolean;
  description: string;
}

const ROUTES = "/api/webhooks/sms and /api/webhooks/email";
const WITH_MOCK = "/api/webhooks/sms, /api/webhooks/email and /api/provider/mock/inbound";

export function inboundWebhookAccess(config: { auth: "on" | "off"; webhookSecrets: readonly string[] }): InboundAccess {
  const signed = config.webhookSecrets.length > 0;
  if (config.auth === "off") {
    return signed
      ? { openToAnyone: false, description: `${WITH_MOCK} need X-Messaging-Signature (MESSAGING_AUTH=off: no API key is asked)` }
      : {
          openToAnyone: true,
          description: `MESSAGING_AUTH=off and MESSAGING_WEBHOOK_SECRETS is not set: ${WITH_MOCK} accept unsigned requests from anyone`,
        };
  }
  return signed
    ? {
        openToAnyone: false,
        description: `${ROUTES} accept a valid X-Messaging-Signature or an API key with the inbound scope; /api/provider/mock/inbound needs an admin key and the signature`,
      }
    : {
        openToAnyone: false,
        description: `${ROUTES} are closed except to API keys with the inbound scope (\`messaging keys create --scope inbound\`); MESSAGING_WEBHOOK_SECRETS is not set, so no signature opens them`,
      };
}
