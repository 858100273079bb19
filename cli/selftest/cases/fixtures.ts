import { type CaseContext, check, checkAccepted, checkStatus, fail, show } from "../case.ts";
import type { Answer } from "../client.ts";

/** The bodies and round trips most cases are made of, built from the run's fresh data. */

export type Json = Record<string, unknown>;

export function smsPayload(ctx: CaseContext, fields: Json = {}): Json {
  return { from: ctx.data.phone(), to: ctx.data.phone(), type: "sms", body: ctx.data.body(), attachments: null, timestamp: ctx.data.timestamp(), ...fields };
}

export function emailPayload(ctx: CaseContext, fields: Json = {}): Json {
  return {
    from: ctx.data.email("from"),
    to: ctx.data.email("to"),
    body: ctx.data.body("<p>hello</p>"),
    attachments: [],
    timestamp: ctx.data.timestamp(),
    ...fields,
  };
}

export function inboundSmsPayload(ctx: CaseContext, fields: Json = {}): Json {
  return { ...smsPayload(ctx), messaging_provider_id: ctx.data.providerId(), ...fields };
}

export function inboundEmailPayload(ctx: CaseContext, fields: Json = {}): Json {
  return { ...emailPayload(ctx), xillio_id: ctx.data.providerId(), ...fields };
}

export interface Accepted {
  id: string;
  conversationId: string;
  answer: Answer;
}

/** POSTs `payload` to `path` and expects the 202 of SPEC §3/§4. */
export async function accept(ctx: CaseContext, path: string, payload: Json, what: string, headers?: Record<string, string>): Promise<Accepted> {
  const answer = await ctx.http.post(path, payload, headers ? { headers } : {});
  return { ...checkAccepted(answer, what), answer };
}

/** `GET /api/messages/{id}`, expected to exist. */
export async function getMessage(ctx: CaseContext, id: string): Promise<Json> {
  const answer = await ctx.http.get(`/api/messages/${id}`);
  checkStatus(answer, 200, `GET /api/messages/${id}`);
  return answer.body;
}

export interface Page {
  items: Json[];
  meta: Json;
  answer: Answer;
}

/** One page of a list route, checked for the `{items, meta}` shape of SPEC §6. */
export async function page(ctx: CaseContext, path: string): Promise<Page> {
  const answer = await ctx.http.get(path);
  checkStatus(answer, 200, `GET ${path}`);
  const { items, meta } = answer.body as { items?: unknown; meta?: unknown };
  check(Array.isArray(items), `GET ${path}: items is not a list: ${show(answer.body)}`);
  check(typeof meta === "object" && meta !== null, `GET ${path}: meta is missing`);
  return { items: items as Json[], meta: meta as Json, answer };
}

/** Every message of a conversation (the run's conversations are small: one page of 50). */
export async function messagesOf(ctx: CaseContext, conversationId: string): Promise<Json[]> {
  return (await page(ctx, `/api/conversations/${conversationId}/messages?pageSize=50`)).items;
}

/**
 * A conversation as the list shows it. The run's conversations have the latest activity, but a live target may
 * hold others with later timestamps, so a few pages are searched.
 */
export async function findConversation(ctx: CaseContext, id: string, pages = 4): Promise<Json> {
  for (let p = 1; p <= pages; p++) {
    const { items } = await page(ctx, `/api/conversations?page=${p}&pageSize=50`);
    const found = items.find((c) => c.id === id);
    if (found) return found;
    if (items.length < 50) break;
  }
  fail(`conversation ${id} is not among the first ${pages * 50} conversations of GET /api/conversations`);
}

/** Waits until `read` gives a value `done` accepts, asking every `everyMs`; the case's timeout ends the wait. */
export async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, everyMs = 100): Promise<T> {
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    await Bun.sleep(everyMs);
  }
}
