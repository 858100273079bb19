import { Elysia } from "elysia";
import { AppError } from "../../http/errors.ts";
import { documentedResponses, errorModel, readErrors } from "../../http/error-model.ts";
import { idempotencyRequest, respondWith } from "../../http/idempotency.ts";
import { listMessagesByStatus } from "./by-status.ts";
import { byStatusQuery, type MessageLimits, messageModels } from "./model.ts";
import { getMessage, type MessagesDeps, sendMessage } from "./service.ts";

const SEND_ROUTES = new Set(["sms", "email"]);

const WRITE_RESPONSES = documentedResponses({ 202: "messages.accepted", ...readErrors(400, 401, 406, 409, 413, 415, 422, 429, 503) });

/** `POST /api/messages/sms|email`, `GET /api/messages?status=` and `GET /api/messages/{id}`. */
export function messagesModule(deps: MessagesDeps, limits: MessageLimits, cursorKey: () => Promise<Uint8Array>) {
  return new Elysia({ name: "messages", detail: { tags: ["Messages"] } })
    .use(errorModel)
    .model(messageModels(limits))
    .post(
      "/api/messages/sms",
      ({ body, request, set }) =>
        sendMessage(deps, { ...body, channel: body.type, sendAt: body.send_at }, idempotencyRequest(request, "/api/messages/sms")).then((answer) =>
          respondWith(set, answer),
        ),
      {
        body: "messages.sendSms",
        // Documents the body as JSON; the global parser (http/json-body.ts) still runs first and does the work.
        parse: "json",
        // Documented, not validated per request: the handler builds the 202 itself (`accepted`), and errors are
        // rendered by the error handler, which never ran through the route's response validation.
        detail: {
          responses: WRITE_RESPONSES,
          summary: "Send an SMS or MMS",
          description:
            "202 means committed. Honours Idempotency-Key (replays carry Idempotent-Replayed: true). 422 sender_not_allowed: no provider of the route owns `from`; 422 recipient_opted_out: the recipient texted STOP to `from`; 400 naming the limit: more media or a longer body than the route's providers take (Twilio: 10 media, 1600 UTF-16 code units).",
        },
      },
    )
    .post(
      "/api/messages/email",
      ({ body, request, set }) =>
        sendMessage(deps, { ...body, channel: "email", sendAt: body.send_at }, idempotencyRequest(request, "/api/messages/email")).then((answer) =>
          respondWith(set, answer),
        ),
      {
        body: "messages.sendEmail",
        // Documents the body as JSON; the global parser (http/json-body.ts) still runs first and does the work.
        parse: "json",
        // Documented, not validated per request: the handler builds the 202 itself (`accepted`), and errors are
        // rendered by the error handler, which never ran through the route's response validation.
        detail: {
          responses: WRITE_RESPONSES,
          summary: "Send an email",
          description:
            "202 means committed. Honours Idempotency-Key. `from` may carry a display name (`Example <noreply@example.com>`). 422 sender_not_allowed: no provider of the route owns `from`. Attachments are fetched and sent as real attachments; without `subject`, the subject is the body's text.",
        },
      },
    )
    .get("/api/messages", ({ query }) => listMessagesByStatus(deps, cursorKey, query.status, query), {
      query: byStatusQuery,
      detail: {
        summary: "Messages of one status, oldest first",
        description:
          "Lists what waits (`status=scheduled`, `status=queued`) so it can be canceled, or any other status, by page or " +
          "cursor (`meta.next_cursor`).",
        responses: documentedResponses({ 200: "messages.page", ...readErrors(400, 401, 403, 406, 429, 503) }),
      },
    })
    .get(
      "/api/messages/:id",
      ({ params }) => {
        // `/api/messages/sms` and `/email` are send routes, not message ids: a GET there is a wrong method.
        if (SEND_ROUTES.has(params.id)) {
          throw new AppError("method_not_allowed", `GET is not allowed on /api/messages/${params.id}`, { headers: { allow: "POST" } });
        }
        return getMessage(deps, params.id);
      },
      {
      detail: {
        summary: "One message with its delivery attempts",
        responses: documentedResponses({ 200: "messages.detail", ...readErrors(401, 404, 406, 429, 503) }),
      },
      },
    );
}
