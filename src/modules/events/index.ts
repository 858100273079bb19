import { Elysia } from "elysia";
import { documentedResponses, errorModel, errorResponses, readErrors } from "../../http/error-model.ts";
import { eventModels, eventsQuery } from "./model.ts";
import { addEndpoint, enable, endpointList, type EventsDeps, readFeed, removeEndpoint, rotateSecret } from "./service.ts";

const WRITE_ERRORS = errorResponses(400, 401, 403, 406, 413, 415, 422, 429, 503);

/** `/api/event-endpoints` (admin scope) and `GET /api/events` (read scope): SPEC §10. */
export function eventsModule(deps: EventsDeps) {
  return new Elysia({ name: "events", detail: { tags: ["Events"] } })
    .use(errorModel)
    .model(eventModels)
    .post(
      "/api/event-endpoints",
      async ({ body, set }) => {
        set.status = 201;
        return addEndpoint(deps, body);
      },
      {
        body: "events.endpointCreate",
        parse: "json",
        response: { 201: "events.endpointCreated", ...WRITE_ERRORS },
        detail: {
          summary: "Register an endpoint for events (admin scope)",
          description:
            "The URL must pass the egress guard now (422 url_not_allowed otherwise, nothing stored) and at every delivery. " +
            "The signing secret is in this answer only. Events are POSTed with X-Messaging-Event-Id and " +
            "X-Messaging-Signature: t=<unix>,v1=<hex> (HMAC-SHA256 of `t.rawBody`), retried with backoff on anything but a 2xx.",
        },
      },
    )
    .get("/api/event-endpoints", () => endpointList(deps), {
      detail: {
        summary: "Event endpoints, without secrets (admin scope)",
        responses: documentedResponses({ 200: "events.endpointList", ...readErrors(401, 403, 406, 429, 503) }),
      },
    })
    .delete(
      "/api/event-endpoints/:id",
      async ({ params }) => {
        await removeEndpoint(deps, params.id);
        return new Response(null, { status: 204 });
      },
      {
        detail: {
          summary: "Remove an event endpoint and its undelivered events (admin scope)",
          responses: { 204: { description: "Removed" }, ...documentedResponses(readErrors(401, 403, 404, 429, 503)) },
        },
      },
    )
    .post("/api/event-endpoints/:id/rotate-secret", ({ params }) => rotateSecret(deps, params.id), {
      detail: {
        summary: "A new signing secret (admin scope)",
        description: "The new secret is shown once; for 24 h the previous one signs too (two v1= values), so receivers can switch without a gap.",
        responses: documentedResponses({ 200: "events.secretRotated", ...readErrors(401, 403, 404, 429, 503) }),
      },
    })
    .post("/api/event-endpoints/:id/enable", ({ params }) => enable(deps, params.id), {
      detail: {
        summary: "Enable a disabled endpoint (admin scope)",
        description: "Its undelivered events still retained, given-up ones included, are sent again, in order per message.",
        responses: documentedResponses({ 200: "events.endpoint", ...readErrors(401, 403, 404, 429, 503) }),
      },
    })
    .get("/api/events", ({ query }) => readFeed(deps, query), {
      query: eventsQuery,
      detail: {
        summary: "The event feed, in commit order (read scope)",
        description:
          "Pass next_cursor as `after` to read on; a page with no items means nothing new yet (poll again with the same cursor). " +
          "Events are kept MESSAGING_EVENT_RETENTION_DAYS (default 7) whether or not an endpoint received them.",
        responses: documentedResponses({ 200: "events.page", ...readErrors(400, 401, 406, 429, 503) }),
      },
    });
}
