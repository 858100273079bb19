/**
 * Events to the client app over HTTP (SPEC §10): the endpoint registry (admin scope) and the pull feed (read
 * scope). The registry and the feed's SQL live in src/events/, shared with the CLI and the event workers.
 */
import type { SqlRunner } from "../../db/runner.ts";
import { EVENT_TYPES, subscriptionCovers } from "../../domain/event-types.ts";
import {
  createEndpoint,
  deleteEndpoint,
  type EndpointDeps,
  EndpointError,
  enableEndpoint,
  listEndpoints,
  rotateEndpointSecret,
} from "../../events/endpoints.ts";
import { decodeFeedCursor, encodeFeedCursor, FEED_START, feedPage } from "../../events/feed.ts";
import { AppError, validationFailed } from "../../http/errors.ts";
import type { EventsQuery } from "./model.ts";

export interface EventsDeps extends EndpointDeps {
  sql: SqlRunner;
  snippetLength: number;
  /** Tell this process's credential store to read again (a new secret must sign at once). */
  credentialsChanged?: () => Promise<void>;
}

const FEED_LIMIT_DEFAULT = 100;

function answer(err: unknown): never {
  if (err instanceof EndpointError) {
    if (err.kind === "url_not_allowed") throw new AppError("url_not_allowed", err.message);
    if (err.kind === "not_found") throw new AppError("not_found", err.message);
    throw new AppError("service_unavailable", err.message);
  }
  throw err;
}

export async function addEndpoint(deps: EventsDeps, body: { url: string; events: string[]; description?: string | null | undefined }) {
  const created = await createEndpoint(deps, body).catch(answer);
  await deps.credentialsChanged?.();
  return created;
}

export async function endpointList(deps: EventsDeps) {
  return { items: await listEndpoints(deps.sql) };
}

export async function removeEndpoint(deps: EventsDeps, id: string): Promise<void> {
  if (!(await deleteEndpoint(deps.sql, id))) throw new AppError("not_found", `event endpoint ${id} does not exist`);
}

export async function rotateSecret(deps: EventsDeps, id: string) {
  const rotated = await rotateEndpointSecret(deps, id).catch(answer);
  await deps.credentialsChanged?.();
  return rotated;
}

export function enable(deps: EventsDeps, id: string) {
  return enableEndpoint(deps.sql, id).catch(answer);
}

/** The concrete types a `types` filter names (`message.status` and `*` expanded). */
function typesFilter(raw: string | undefined): string[] | null {
  if (raw === undefined) return null;
  const names = raw.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => n !== "*" && n !== "message.status" && !(EVENT_TYPES as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length > 0) {
    throw validationFailed([{ path: "query.types", message: `unknown event type ${unknown[0] ?? "(none given)"}; use ${EVENT_TYPES.join(", ")}, message.status or *` }]);
  }
  if (names.includes("*")) return null;
  return EVENT_TYPES.filter((t) => subscriptionCovers(names, t));
}

/** `GET /api/events`: the events after the cursor, in commit order; an empty page keeps the cursor. */
export async function readFeed(deps: EventsDeps, q: EventsQuery) {
  const after = q.after === undefined ? FEED_START : decodeFeedCursor(q.after);
  if (after === null) throw validationFailed([{ path: "query.after", message: "after is not a cursor this service issued" }]);
  const types = typesFilter(q.types);
  const page = await feedPage(deps.sql, after, types, q.limit ?? FEED_LIMIT_DEFAULT, deps.snippetLength);
  return { items: page.items, next_cursor: encodeFeedCursor(page.next) };
}
