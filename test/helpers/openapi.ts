/**
 * Validates requests against a provider's own OpenAPI description (../shared/specs/, read at test time, never
 * copied into the repository): the operation's path and header parameters and its request body schema, with Ajv
 * (the standard JSON Schema validator). A form body is read the way the description means it: a key repeated, like
 * Twilio's `MediaUrl`, is an array, and text is coerced to the number or boolean a property declares.
 *
 * When the description is absent, `loadOperation` answers the reason, and the fakes validate nothing (the tests
 * that need validation skip with that reason printed).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv, { type ValidateFunction } from "ajv";
import addFormats from "ajv-formats";

export const SPECS_DIR = join(import.meta.dir, "..", "..", "..", "shared", "specs");

export interface OperationRequest {
  /** Path parameters by name (already decoded). */
  path?: Record<string, string>;
  headers?: Record<string, string | string[] | undefined>;
  /** The parsed JSON body, or the form's pairs in order. */
  json?: unknown;
  form?: [string, string][];
}

export interface Operation {
  /** Every way the request departs from the description; empty when it conforms. */
  violations(request: OperationRequest): string[];
}

/** How many requests each description has judged in this process (the closing figures of issue 16). */
export const validationCounts: Record<string, number> = {};

const cache = new Map<string, Ajv>();

function ajvFor(file: string): Ajv {
  let ajv = cache.get(file);
  if (ajv) return ajv;
  const doc = JSON.parse(readFileSync(join(SPECS_DIR, file), "utf8")) as Record<string, unknown>;
  ajv = new Ajv({ strict: false, allErrors: true, coerceTypes: "array", validateSchema: false, discriminator: false });
  // ajv-formats types against its own copy of Ajv; the instance is the same API.
  addFormats(ajv as unknown as Parameters<typeof addFormats>[0]);
  // Twilio's own format names: E.164 (`+` and up to 15 digits) or a short code, as its description says.
  ajv.addFormat("phone-number", /^(?:\+[1-9]\d{1,14}|\d{3,8})$/);
  for (const name of ["sid", "currency", "uri-template", "http-method", "date-time-rfc-2822"]) ajv.addFormat(name, true);
  ajv.addSchema({ ...doc, $id: "spec" }, "spec");
  cache.set(file, ajv);
  return ajv;
}

const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, "~0").replace(/\//g, "~1")).join("/");

/**
 * The validator of one operation (`post` of `/v3/mail/send`), or the reason it cannot be had (the description is
 * absent or does not hold the operation).
 */
export function loadOperation(file: string, path: string, method: string): Operation | string {
  if (!existsSync(join(SPECS_DIR, file))) return `../shared/specs/${file} is absent, so requests are not checked against the provider's own description`;
  const ajv = ajvFor(file);
  const doc = ajv.getSchema("spec")!.schema as { paths: Record<string, Record<string, unknown>>; components: Record<string, Record<string, unknown>> };
  const operation = doc.paths[path]?.[method] as { parameters?: unknown[]; requestBody?: Record<string, unknown> } | undefined;
  if (!operation) return `../shared/specs/${file} has no ${method.toUpperCase()} ${path}`;
  const deref = <T>(value: unknown): T => {
    let v = value as Record<string, unknown>;
    while (typeof v?.$ref === "string") {
      const parts = (v.$ref as string).replace(/^#\//, "").split("/");
      v = parts.reduce<Record<string, unknown>>((node, key) => node[key.replace(/~1/g, "/").replace(/~0/g, "~")] as Record<string, unknown>, doc as unknown as Record<string, unknown>);
    }
    return v as T;
  };
  const parameters = (operation.parameters ?? []).map((p) => deref<{ name: string; in: string; required?: boolean; schema: unknown }>(p));
  const paramValidators = parameters
    .filter((p) => p.in === "path" || p.in === "header")
    // A parameter's schema may point into the description's components: its references are made absolute.
    .map((p) => ({ ...p, validate: ajv.compile(JSON.parse(JSON.stringify(p.schema).replaceAll('"#/', '"spec#/'))) as ValidateFunction }));
  let bodyRef: string | undefined;
  let bodyType: string | undefined;
  if (operation.requestBody) {
    const refPath = typeof operation.requestBody.$ref === "string" ? (operation.requestBody.$ref as string).replace(/^#/, "") : `/paths/${pointer(path)}/${method}/requestBody`;
    const content = deref<{ content: Record<string, unknown> }>(operation.requestBody).content;
    bodyType = Object.keys(content)[0]!;
    bodyRef = `spec#${refPath}/content/${pointer(bodyType)}/schema`;
  }
  const validateBody = bodyRef === undefined ? undefined : ajv.compile({ $ref: bodyRef });
  const bodySchema = bodyRef === undefined ? undefined : deref<{ properties?: Record<string, { type?: string }> }>(ajv.getSchema(bodyRef)?.schema);
  return {
    violations(request) {
      validationCounts[file] = (validationCounts[file] ?? 0) + 1;
      const out: string[] = [];
      for (const p of paramValidators) {
        const raw = p.in === "path" ? request.path?.[p.name] : request.headers?.[p.name.toLowerCase()];
        if (raw === undefined) {
          if (p.required) out.push(`${p.in} parameter ${p.name} is required`);
          continue;
        }
        if (!p.validate(raw)) out.push(...(p.validate.errors ?? []).map((e) => `${p.in} parameter ${p.name}${e.instancePath} ${e.message}`));
      }
      if (validateBody !== undefined) {
        let body: unknown = request.json;
        if (request.form !== undefined) {
          const object: Record<string, unknown> = {};
          for (const [key, value] of request.form) {
            const isArray = bodySchema?.properties?.[key]?.type === "array";
            if (key in object || isArray) object[key] = [...(Array.isArray(object[key]) ? (object[key] as unknown[]) : key in object ? [object[key]] : []), value];
            else object[key] = value;
          }
          body = object;
        }
        if (!validateBody(body)) out.push(...(validateBody.errors ?? []).map((e) => `body${e.instancePath || ""} ${e.message}${e.params && "additionalProperty" in e.params ? ` (${String(e.params.additionalProperty)})` : ""}`));
      }
      return out;
    },
  };
}
