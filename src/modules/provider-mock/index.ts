import { Elysia } from "elysia";
import { errorModel, errorResponses } from "../../http/error-model.ts";
import { respondWith } from "../../http/idempotency.ts";
import { type MessageLimits, messageResponseModels } from "../messages/model.ts";
import { mockConfigSchema, mockInboundSchema, mockReportAcceptedSchema, mockReportSchema } from "./model.ts";
import { getMockConfig, injectInbound, type ProviderMockDeps, putMockConfig, reportMock } from "./service.ts";

/** The built-in mock provider: inject inbound messages, report deliveries, read and change its fault injection. */
export function providerMockModule(deps: ProviderMockDeps, limits: MessageLimits) {
  return new Elysia({ name: "provider-mock", detail: { tags: ["Provider mock"] } })
    .use(errorModel)
    .model({
      "providerMock.config": mockConfigSchema,
      "providerMock.inbound": mockInboundSchema(limits),
      "providerMock.report": mockReportSchema,
      "providerMock.reportAccepted": mockReportAcceptedSchema,
      "messages.accepted": messageResponseModels["messages.accepted"],
    })
    .post("/api/provider/mock/inbound", async ({ body, set }) => respondWith(set, await injectInbound(deps, body)), {
      body: "providerMock.inbound",
      // Documents the body as JSON; the global parser (http/json-body.ts) still runs first and does the work.
      parse: "json",
      response: { 202: "messages.accepted", ...errorResponses(400, 401, 406, 413, 415, 429, 503) },
      detail: { summary: "Inject an inbound message as if a provider had delivered it" },
    })
    .post(
      "/api/provider/mock/reports",
      async ({ body, set }) => {
        const accepted = await reportMock(deps, body);
        set.status = 202;
        return accepted;
      },
      {
        body: "providerMock.report",
        // Documents the body as JSON; the global parser (http/json-body.ts) still runs first and does the work.
        parse: "json",
        response: { 202: "providerMock.reportAccepted", ...errorResponses(400, 401, 404, 406, 413, 415, 429, 503) },
        detail: { summary: "Report what became of an outbound message, as a provider would; status only moves forward" },
      },
    )
    .get("/api/provider/mock/config", () => getMockConfig(deps), {
      response: { 200: "providerMock.config", ...errorResponses(401, 406, 429, 503) },
      detail: { summary: "The mock provider's fault injection" },
    })
    .put("/api/provider/mock/config", ({ body }) => putMockConfig(deps, body), {
      body: "providerMock.config",
      // Documents the body as JSON; the global parser (http/json-body.ts) still runs first and does the work.
      parse: "json",
      response: { 200: "providerMock.config", ...errorResponses(400, 401, 406, 413, 415, 429, 503) },
      detail: { summary: "Replace the fault injection; takes effect at the next dispatch" },
    });
}
