import { Elysia } from "elysia";
import { errorModel, errorResponses } from "../../http/error-model.ts";
import { idempotencyRequest, respondWith } from "../../http/idempotency.ts";
import type { MessageLimits } from "../messages/model.ts";
import { messageResponseModels } from "../messages/model.ts";
import { type MessagesDeps, receiveMessage } from "../messages/service.ts";
import { webhookModels } from "./model.ts";

const WEBHOOK_ERRORS = errorResponses(400, 401, 406, 409, 413, 415, 422, 429, 503);

/** `POST /api/webhooks/sms|email`: providers deliver inbound messages here; repeats are deduplicated. */
export function webhooksModule(deps: MessagesDeps, limits: MessageLimits) {
  return new Elysia({ name: "webhooks", detail: { tags: ["Webhooks"] } })
    .use(errorModel)
    .model({ ...webhookModels(limits), "messages.accepted": messageResponseModels["messages.accepted"] })
    .post(
      "/api/webhooks/sms",
      async ({ body, request, set }) => {
        const idem = idempotencyRequest(request, "/api/webhooks/sms");
        const { messaging_provider_id, type, ...rest } = body;
        return respondWith(set, await receiveMessage(deps, { ...rest, channel: type, providerMessageId: messaging_provider_id }, idem));
      },
      {
        body: "webhooks.sms",
        // Documents the body as JSON; the global parser (http/json-body.ts) still runs first and does the work.
        parse: "json",
        response: { 202: "messages.accepted", ...WEBHOOK_ERRORS },
        detail: { summary: "Inbound SMS/MMS", description: "A repeated messaging_provider_id stores nothing and answers the first message's id." },
      },
    )
    .post(
      "/api/webhooks/email",
      async ({ body, request, set }) => {
        const idem = idempotencyRequest(request, "/api/webhooks/email");
        const { xillio_id, ...rest } = body;
        return respondWith(set, await receiveMessage(deps, { ...rest, channel: "email", providerMessageId: xillio_id }, idem));
      },
      {
        body: "webhooks.email",
        // Documents the body as JSON; the global parser (http/json-body.ts) still runs first and does the work.
        parse: "json",
        response: { 202: "messages.accepted", ...WEBHOOK_ERRORS },
        detail: { summary: "Inbound email", description: "A repeated xillio_id stores nothing and answers the first message's id." },
      },
    );
}
