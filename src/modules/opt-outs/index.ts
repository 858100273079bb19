import { Elysia } from "elysia";
import { documentedResponses, errorModel, readErrors } from "../../http/error-model.ts";
import { optOutModels, optOutsQuery } from "./model.ts";
import { listOptOuts, type OptOutsDeps } from "./service.ts";

/** `GET /api/opt-outs` (read scope). */
export function optOutsModule(deps: OptOutsDeps) {
  return new Elysia({ name: "opt-outs", detail: { tags: ["Opt-outs"] } })
    .use(errorModel)
    .model(optOutModels)
    .get("/api/opt-outs", ({ query }) => listOptOuts(deps, query), {
      query: optOutsQuery,
      detail: {
        summary: "Recipients who opted out of a sender, newest first",
        description:
          "An inbound SMS/MMS whose whole body is STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE or OPTOUT (any case, " +
          "surrounding spaces) opts its sender out of messages from the number it was sent to; START, UNSTOP or YES opts " +
          "them back in (the row goes). A provider's unsubscribed answer (Twilio 21610) opts out too. While a row exists, " +
          "sends from `from` to `to` are refused with 422 recipient_opted_out.",
        responses: documentedResponses({ 200: "optOuts.page", ...readErrors(400, 401, 403, 406, 429, 503) }),
      },
    });
}
