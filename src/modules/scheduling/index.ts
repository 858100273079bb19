import { Elysia } from "elysia";
import { documentedResponses, errorModel, readErrors } from "../../http/error-model.ts";
import { type CancelDeps, cancelMessage } from "./service.ts";

/** `POST /api/messages/{id}/cancel` (send scope). */
export function schedulingModule(deps: CancelDeps) {
  return new Elysia({ name: "scheduling", detail: { tags: ["Messages"] } })
    .use(errorModel)
    .post("/api/messages/:id/cancel", ({ params }) => cancelMessage(deps, params.id), {
      detail: {
        summary: "Cancel a scheduled or queued message",
        description:
          "Takes back a message no worker has claimed yet: status `scheduled`, or `queued` and unclaimed. Decided in one " +
          "statement, so a cancel racing a dispatch either cancels it (the provider is never called) or answers 409 (it " +
          "goes out). 200 with the message, status `canceled`, also when it was canceled before; 409 `not_cancelable` " +
          "with its `status` once claimed, sent or final; 404 for an unknown id.",
        responses: documentedResponses({ 200: "messages.detail", ...readErrors(401, 403, 404, 406, 409, 429, 503) }),
      },
    });
}
