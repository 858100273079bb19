import { openapi } from "@elysiajs/openapi";
import { ScalarRender } from "@elysiajs/openapi/scalar";
// The package's exports map hides its browser bundle, so it is reached by path (it is a dependency, always installed).
// @ts-expect-error a `type: "file"` import is a path string; the bundle ships no declaration for it.
import scalarBundle from "../../node_modules/@scalar/api-reference/dist/browser/standalone.js" with { type: "file" };
import { Elysia } from "elysia";
import { z } from "zod";

export const DOCS_PATH = "/docs";
const SPEC_PATH = "/openapi.json";
const SCALAR_PATH = `${DOCS_PATH}/assets/scalar.js`;

/**
 * Run before the bundle: the zod inside it probes whether it may compile validators with `Function("")`, which
 * the page's CSP (no 'unsafe-eval') refuses and reports as a violation. zod's `jitless` setting (its advice for
 * CSP-restricted pages) skips the probe; the bundled copy reads its settings from this global.
 */
const ZOD_JITLESS = "globalThis.__zod_globalConfig = Object.assign(globalThis.__zod_globalConfig || {}, { jitless: true });\n";

export interface ApiDocsOptions {
  version: string;
  /** MESSAGING_PUBLIC_URL: the server the document names; without it, each request's own origin. */
  publicUrl?: string | undefined;
  /**
   * What each route needs (http/auth.ts `routeRequirement`): the document declares the Bearer scheme and marks
   * every operation with it (naming the scope) or as open. Absent: no authentication is described.
   */
  requirement?: (method: string, path: string) => string | null;
  /** `MESSAGING_AUTH=off`: the description says this deployment accepts requests without a key. */
  authOff?: boolean;
}

/** The name of the scheme in `components.securitySchemes`, which each operation's `security` refers to. */
export const BEARER_SCHEME = "apiKey";

/**
 * `GET /docs` (interactive reference) and `GET /openapi.json`, generated from the route schemas.
 * The reference page's script is embedded in the binary and served from here, never from a CDN.
 */
export function apiDocs(options: ApiDocsOptions) {
  // Read on the first visit to the page, not at start-up; kept for the next ones.
  let script: Promise<Blob> | undefined;
  const scriptBody = () => (script ??= Bun.file(scalarBundle).bytes().then((bundle) => new Blob([ZOD_JITLESS, bundle])));
  const publicUrl = options.publicUrl?.replace(/\/+$/, "");
  const info = {
    title: "messaging",
    version: options.version,
    description: "Unified SMS/MMS/email messaging API. Errors always have the body `{code, message, request_id, details?}`.",
  };
  const page = ScalarRender(info, {
    url: SPEC_PATH,
    cdn: SCALAR_PATH,
    // Offline and self-hosted: no web fonts (the default loads them from Scalar's servers), no telemetry, and
    // none of the buttons that only work with Scalar's cloud (Ask AI, Generate MCP, the developer toolbar's
    // Configure / Share / Deploy, the hosted API client).
    hideClientButton: true,
    telemetry: false,
    withDefaultFonts: false,
    agent: { disabled: true },
    mcp: { disabled: true },
    showDeveloperTools: "never",
    // A small API: every operation on one page, no tag left collapsed.
    defaultOpenAllTags: true,
    // The Bearer scheme chosen up front, so the page shows the field to paste a key into (the examples then carry it).
    authentication: { preferredSecurityScheme: BEARER_SCHEME },
    _integration: "elysiajs",
  } as never);
  const secured = new WeakMap<object, OpenApiDocument>();
  const describeSecurity = (document: OpenApiDocument): OpenApiDocument => {
    if (options.requirement === undefined) return document;
    let done = secured.get(document);
    if (!done) {
      done = withSecurity(document, options.requirement, options.authOff ?? false);
      secured.set(document, done);
    }
    return done;
  };
  return new Elysia({ name: "api-docs" })
    .onAfterHandle(({ request, route, response }) => {
      if (route !== SPEC_PATH) return;
      const document = describeSecurity(response as OpenApiDocument);
      return publicUrl !== undefined ? document : withServer(document, requestOrigin(request));
    })
    // A handler, not the plugin's prebuilt Response: Elysia hands a prebuilt Response to Bun as a native static
    // route when the route has no hooks where it is registered, and Bun then answers it without any request hook
    // (no security headers, no API-key check). The hook above was enough to make that happen.
    .get(DOCS_PATH, () => new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } }), { detail: { hide: true } })
    .get(SCALAR_PATH, async () => new Response(await scriptBody(), { headers: { "content-type": "text/javascript; charset=utf-8" } }), {
      detail: { hide: true },
    })
    .use(
      openapi({
        // The page is served above; the plugin only generates the document.
        provider: null,
        specPath: SPEC_PATH,
        mapJsonSchema: { zod: (schema: z.ZodType) => z.toJSONSchema(schema, { unrepresentable: "any", io: "input" }) },
        exclude: { paths: [DOCS_PATH, SCALAR_PATH] },
        documentation: {
          info,
          ...(publicUrl === undefined ? {} : { servers: [{ url: publicUrl }] }),
          tags: [
            { name: "Messages", description: "Send outbound messages and read one message" },
            { name: "Webhooks", description: "Inbound messages delivered by providers: an API key with the inbound scope, or X-Messaging-Signature when webhook secrets are set" },
            { name: "Conversations", description: "Threads between two addresses" },
            { name: "Provider mock", description: "The built-in mock provider" },
            { name: "Provider webhooks", description: "Twilio's and SendGrid's own webhooks, verified by each provider's proof" },
            { name: "Operations", description: "Health, readiness and metrics" },
          ],
        },
      }),
    );
}

type OpenApiDocument = { openapi: string; info: unknown } & Record<string, unknown>;
type Operation = { description?: string; security?: Record<string, string[]>[] } & Record<string, unknown>;

const SCOPE_TEXT: Record<string, string> = {
  send: "an API key with the `send` scope",
  read: "an API key with the `read` scope",
  admin: "an API key with the `admin` scope",
  inbound: "an API key with the `inbound` scope (or, where webhook secrets are configured, a valid `X-Messaging-Signature` instead)",
  any: "any valid API key",
};
const HTTP_METHODS = new Set(["get", "put", "post", "delete", "patch", "head", "options", "trace"]);

/**
 * The document with how to authenticate (SPEC §8): the Bearer scheme in `components.securitySchemes`, and on each
 * operation either `security: [{apiKey: []}]` with the scope it needs named at the head of its description, or
 * `security: []` (open) saying so. Generated clients then send the key where it is needed, and the reference page
 * offers a field to paste it. A copy: the plugin's cached document is left as it is.
 */
export function withSecurity(document: OpenApiDocument, requirement: (method: string, path: string) => string | null, authOff: boolean): OpenApiDocument {
  const paths: Record<string, Record<string, Operation>> = {};
  for (const [path, item] of Object.entries((document.paths ?? {}) as Record<string, Record<string, Operation>>)) {
    const copy: Record<string, Operation> = {};
    for (const [method, operation] of Object.entries(item)) {
      if (!HTTP_METHODS.has(method) || typeof operation !== "object" || operation === null) {
        copy[method] = operation;
        continue;
      }
      const needed = requirement(method.toUpperCase(), path);
      const line =
        needed === null
          ? `**Authentication:** none${path.startsWith("/api/webhooks/") ? " (an open route: the request carries its sender's signature instead)" : " (an open route)"}.`
          : `**Authentication:** ${SCOPE_TEXT[needed] ?? `an API key with the \`${needed}\` scope`}, as \`Authorization: Bearer <key>\`.`;
      copy[method] = {
        ...operation,
        description: operation.description ? `${line}\n\n${operation.description}` : line,
        security: needed === null ? [] : [{ [BEARER_SCHEME]: [] }],
      };
    }
    paths[path] = copy;
  }
  const components = (document.components ?? {}) as Record<string, unknown>;
  const info = document.info as { description?: string } & Record<string, unknown>;
  return {
    ...document,
    info: {
      ...info,
      description: `${info.description ?? ""}\n\nAuthentication: every route under \`/api/\` except the Twilio and SendGrid webhooks needs \`Authorization: Bearer <key>\` (keys are made with \`messaging keys create\` and carry the scopes \`send\`, \`read\`, \`admin\`, \`inbound\`; on the generic webhooks a valid \`X-Messaging-Signature\` may stand in for the key where webhook secrets are configured); each operation names the scope it needs.${authOff ? " This deployment runs with `MESSAGING_AUTH=off` and accepts requests without a key." : ""}`,
    },
    components: {
      ...components,
      securitySchemes: {
        ...((components.securitySchemes ?? {}) as Record<string, unknown>),
        [BEARER_SCHEME]: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "msg_<prefix>_<secret>",
          description: "An API key made with `messaging keys create`, sent as `Authorization: Bearer <key>`.",
        },
      },
    },
    paths,
  };
}

/**
 * The document the plugin generated (and caches) with a `servers` entry, so the reference's examples name the
 * server (`curl http://host:port/api/...`) instead of a bare path. A shallow copy: the cached document is shared.
 */
function withServer(document: OpenApiDocument, origin: string | undefined): OpenApiDocument {
  if (origin === undefined) return document;
  const { openapi: version, info, ...rest } = document;
  return { openapi: version, info, servers: [{ url: origin }], ...rest };
}

/**
 * The origin the client reached us at (scheme, Host header, port). Forwarded headers are not read: behind a
 * proxy the operator names the public address with MESSAGING_PUBLIC_URL. A client that sends a made-up Host
 * only changes the document it is answered (never cached: `cache-control: no-store`).
 */
function requestOrigin(request: Request): string | undefined {
  const origin = URL.parse(request.url)?.origin;
  return origin === undefined || origin === "null" ? undefined : origin;
}
