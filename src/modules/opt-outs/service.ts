/**
 * Opt-outs (carrier rules for SMS/MMS): an inbound text whose whole body is STOP or one of its synonyms opts
 * its sender out of messages from the number it was sent to, START and its synonyms opt them back in, and a
 * provider's "unsubscribed" answer (Twilio 21610, written by the delivery workers in delivery/jobs.ts) opts
 * out too. The send path refuses a message to an opted-out recipient in its own statement
 * (messages/repository.ts); this module records keywords and lists what is recorded.
 */
import type { SqlRunner } from "../../db/runner.ts";
import { normalizePhone } from "../../domain/address.ts";
import { type OptOutKeyword, type OptOutPair, optOutKeyword } from "../../domain/opt-out.ts";
import { validationFailed } from "../../http/errors.ts";
import { decodeCursor, encodeCursor, type RowKey } from "../../http/page-cursor.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { OptOutsQuery } from "./model.ts";
import { optOutsPage, recordOptOut, removeOptOut } from "./repository.ts";

export interface OptOutsDeps {
  sql: SqlRunner;
  /** The key page cursors are signed with, shared with the other lists. */
  cursorKey: () => Promise<Uint8Array>;
}

/** An inbound SMS/MMS as far as opt-outs care: its body and the pair a keyword in it names (null: email). */
export interface InboundText {
  body: string;
  optOutPair: OptOutPair | null;
}

/** The keyword an inbound message is, or null: only an SMS/MMS whose whole body is one (domain/opt-out.ts). */
export function inboundKeyword(message: InboundText): OptOutKeyword | null {
  return message.optOutPair === null ? null : optOutKeyword(message.body);
}

/**
 * Applies an inbound keyword in the caller's transaction, the one that stores the message (`messageId`), so the
 * opt-out commits or rolls back with it. MMS counts as well as SMS: carriers read a keyword-only text the same
 * whatever the transport, and a picture with "STOP" as its whole text says what it says.
 */
export async function applyInboundKeyword(tx: SqlRunner, message: InboundText, messageId: string): Promise<OptOutKeyword | null> {
  const keyword = inboundKeyword(message);
  if (keyword === null || message.optOutPair === null) return null;
  if (keyword === "stop") await recordOptOut(tx, message.optOutPair, "inbound", message.body.trim().toUpperCase(), messageId);
  else await removeOptOut(tx, message.optOutPair);
  return keyword;
}

/** Counts an opt-out or opt-in that committed. */
export function countOptOut(metrics: Metrics, action: OptOutKeyword, source: "inbound" | "provider"): void {
  metrics.optOuts.inc({ action, source });
}

const LIST = { kind: "opt-outs" } as const;

/** `GET /api/opt-outs`: newest first, by page or cursor, optionally for one sender and/or one recipient. */
export async function listOptOuts(deps: OptOutsDeps, q: OptOutsQuery) {
  let after: RowKey | undefined;
  if (q.cursor !== undefined) {
    const decoded = decodeCursor(await deps.cursorKey(), LIST, q.cursor);
    if ("refused" in decoded) throw validationFailed([{ path: "query.cursor", message: `cursor ${decoded.refused}` }]);
    after = decoded;
  }
  const filter = { from: q.from && normalizePhone(q.from), to: q.to && normalizePhone(q.to) };
  const page = await optOutsPage(deps.sql, filter, q.limit, q.offset, after);
  const nextCursor = page.next && encodeCursor(await deps.cursorKey(), LIST, page.next);
  return {
    items: page.items,
    meta: { page: q.cursor === undefined ? q.page : null, page_size: q.pageSize, total: page.total, next_cursor: nextCursor },
  };
}
