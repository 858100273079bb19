import { openapi } from "@elysiajs/openapi";
// The package's exports map hides its browser bundle, so it is reached by path (it is a dependency, always installed).
// @ts-expect-error a `type: "file"` import is a path string; the bundle ships no declaration for it.
import scalarBundle from "../../node_modules/@scalar/api-reference/dist/browser/standalone.js" with { type: "file" };
import { Elysia } from "elysia";
import { z } from "zod";

export const DOCS_PATH = "/docs";
const SCALAR_PATH = `${DOCS_PATH}/assets/scalar.js`;

/**
 * `GET /docs` (interactive reference) and `GET /openapi.json`, generated from the route schemas.
 * The reference page's script is embedded in the binary and served from here, never from a CDN.
 */
export function apiDocs(info: { version: string }) {
  const script = Bun.file(scalarBundle);
  return new Elysia({ name: "api-docs" })
    .get(SCALAR_PATH, () => new Response(script, { headers: { "content-type": "text/javascript; charset=utf-8" } }), {
      detail: { hide: true },
    })
    .use(
      openapi({
        path: DOCS_PATH,
        specPath: "/openapi.json",
        provider: "scalar",
        // No web fonts (the default loads them from Scalar's servers), no telemetry: the page works offline.
        scalar: { cdn: SCALAR_PATH, hideClientButton: true, telemetry: false, withDefaultFonts: false } as never,
        mapJsonSchema: { zod: (schema: z.ZodType) => z.toJSONSchema(schema, { unrepresentable: "any", io: "input" }) },
        exclude: { paths: [SCALAR_PATH] },
        documentation: {
          info: {
            title: "messaging",
            version: info.version,
            description:
              "Unified SMS/MMS/email messaging API. Errors always have the body `{code, message, request_id, details?}`.",
          },
          tags: [
            { name: "Messages", description: "Send outbound messages and read one message" },
            { name: "Webhooks", description: "Inbound messages delivered by providers" },
            { name: "Conversations", description: "Threads between two addresses" },
            { name: "Provider mock", description: "The built-in mock provider" },
            { name: "Provider webhooks", description: "Twilio's and SendGrid's own webhooks, verified by each provider's proof" },
            { name: "Operations", description: "Health, readiness and metrics" },
          ],
        },
      }),
    );
}
