import { Elysia } from "elysia";
import { documentedResponses, errorModel, readErrors } from "../../http/error-model.ts";
import { paginationQuery } from "../../http/pagination.ts";
import { conversationModels } from "./model.ts";
import { type ConversationsDeps, listConversations, listMessagesOf } from "./service.ts";

const JSON_HEADERS = { "content-type": "application/json;charset=utf-8" };

/** `GET /api/conversations` and `GET /api/conversations/{id}/messages`. */
export function conversationsModule(deps: ConversationsDeps) {
  return new Elysia({ name: "conversations", detail: { tags: ["Conversations"] } })
    .use(errorModel)
    .model(conversationModels)
    .get(
      "/api/conversations",
      // A prebuilt JSON string (see service.ts); Elysia merges the context's headers into the Response.
      async ({ query }) => new Response(await listConversations(deps, query), { headers: JSON_HEADERS }),
      {
      query: paginationQuery,
      detail: {
        summary: "Conversations, most recent activity first",
        responses: documentedResponses({ 200: "conversations.page", ...readErrors(400, 401, 406, 429, 503) }),
      },
      },
    )
    .get("/api/conversations/:id/messages", ({ params, query }) => listMessagesOf(deps, params.id, query), {
      query: paginationQuery,
      detail: {
        summary: "Messages of one conversation, oldest first",
        responses: documentedResponses({ 200: "conversations.messagesPage", ...readErrors(400, 401, 404, 406, 429, 503) }),
      },
    });
}
