import { Elysia } from "elysia";
import { errorModel, errorResponses } from "../../http/error-model.ts";
import { paginationQuery } from "../../http/pagination.ts";
import { conversationModels } from "./model.ts";
import { type ConversationsDeps, listConversations, listMessagesOf } from "./service.ts";

/** `GET /api/conversations` and `GET /api/conversations/{id}/messages`. */
export function conversationsModule(deps: ConversationsDeps) {
  return new Elysia({ name: "conversations", detail: { tags: ["Conversations"] } })
    .use(errorModel)
    .model(conversationModels)
    .get("/api/conversations", ({ query }) => listConversations(deps, query), {
      query: paginationQuery,
      response: { 200: "conversations.page", ...errorResponses(400, 401, 406, 429, 503) },
      detail: { summary: "Conversations, most recent activity first" },
    })
    .get("/api/conversations/:id/messages", ({ params, query }) => listMessagesOf(deps, params.id, query), {
      query: paginationQuery,
      response: { 200: "conversations.messagesPage", ...errorResponses(400, 401, 404, 406, 429, 503) },
      detail: { summary: "Messages of one conversation, oldest first" },
    });
}
