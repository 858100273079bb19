import { Elysia } from "elysia";
import { documentedResponses, errorModel, readErrors } from "../../http/error-model.ts";
import { paginationQuery } from "../../http/pagination.ts";
import { conversationModels } from "./model.ts";
import { type ConversationsDeps, deleteConversationById, listConversations, listMessagesOf } from "./service.ts";

const JSON_HEADERS = { "content-type": "application/json;charset=utf-8" };

/** `GET /api/conversations`, `GET /api/conversations/{id}/messages` and `DELETE /api/conversations/{id}`. */
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
    })
    .delete(
      "/api/conversations/:id",
      async ({ params }) => {
        await deleteConversationById(deps, params.id);
        return new Response(null, { status: 204 });
      },
      {
        detail: {
          summary: "Delete a conversation with all its messages (admin scope)",
          description:
            "Removes the conversation, its messages and their delivery attempts and jobs, and takes it off the total. " +
            "A later message between the same pair starts a new conversation with a new id. A message already handed " +
            "to a worker may still reach its provider. Stored Idempotency-Key responses (ids only) expire on their own.",
          responses: { 204: { description: "Deleted" }, ...documentedResponses(readErrors(401, 403, 404, 429, 503)) },
        },
      },
    );
}
