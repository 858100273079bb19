import { Elysia } from "elysia";
import { z } from "zod";
import { ERROR_STATUS } from "./errors.ts";

/** The error envelope of SPEC §2 as a schema, registered once so every route's error responses reference it. */
export const errorBodySchema = z
  .object({
    code: z.enum(Object.keys(ERROR_STATUS) as [keyof typeof ERROR_STATUS, ...(keyof typeof ERROR_STATUS)[]]),
    message: z.string(),
    request_id: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    status: z.string().optional().meta({ description: "not_cancelable only: the message's status when the cancel was refused" }),
  })
  .meta({ description: "Every error: a stable snake_case code, a human message, the request id, and field details on validation errors" });

export const errorModel = new Elysia({ name: "error.model" }).model({ error: errorBodySchema });

/** Error responses a JSON route can give, for its OpenAPI entry. */
export function errorResponses(...statuses: number[]) {
  return Object.fromEntries(statuses.map((s) => [s, "error" as const]));
}

/**
 * OpenAPI responses of a read route given by model name, without Elysia's `response` hook: the hook would
 * also validate every response at run time, which on a 50-item page cost more than the query itself.
 * The handlers' return types are checked by TypeScript instead.
 */
export function documentedResponses(map: Record<number, string>): Record<string, { description: string; content: Record<string, { schema: { $ref: string } }> }> {
  return Object.fromEntries(
    Object.entries(map).map(([status, model]) => [
      status,
      {
        description: Number(status) < 400 ? "OK" : "Error (see `code`)",
        content: { "application/json": { schema: { $ref: `#/components/schemas/${model}` } } },
      },
    ]),
  );
}

/** Error statuses a read route can answer, as model names for `documentedResponses`. */
export const readErrors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, "error"]));
