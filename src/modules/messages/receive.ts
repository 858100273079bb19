import type { SqlRunner } from "../../db/runner.ts";
import type { IdempotencyRequest } from "../../http/idempotency.ts";
import { claimIdempotencyKey, rememberResponse } from "../idempotency/service.ts";
import { applyInboundKeyword, countOptOut, inboundKeyword } from "../opt-outs/service.ts";
import { findInbound, insertMessage, lockInboundProviderId, type NewMessage, type StoredIds } from "./repository.ts";
import type { MessagesDeps } from "./service.ts";
import { accepted, countWrite, type MessageInput, newMessage, replayedAccepted, type WriteResult, writeOnce } from "./write.ts";

/**
 * Stores an inbound message (SPEC §4) unless this provider id was seen on this transport before,
 * in which case nothing is stored and the first message's ids are answered. The answer matches the database
 * when the connection is lost mid-write (see `writeOnce`). An SMS/MMS whose whole body is an opt-out or opt-in
 * keyword also records or removes the opt-out, in the same transaction (a duplicate or a replay does not).
 */
export async function receiveMessage(
  deps: MessagesDeps,
  input: MessageInput & { providerMessageId: string },
  idem?: IdempotencyRequest,
): Promise<WriteResult> {
  const message = newMessage(input, "inbound", input.providerMessageId);
  const result = await writeOnce(
    deps.fence,
    deps.onOutcome,
    (token) =>
      deps.sql.transaction(async (tx): Promise<WriteResult> => {
        if (idem) {
          const stored = await claimIdempotencyKey(tx, idem);
          if (stored) return { status: stored.status, body: replayedAccepted(stored.body), replayed: true };
        }
        await lockInboundProviderId(tx, message.transport, input.providerMessageId);
        const first = await findInbound(tx, message.transport, input.providerMessageId);
        const answer: WriteResult = first
          ? { status: 202, body: { ...accepted(first), duplicate: true }, replayed: false }
          : { status: 202, body: accepted(await storeInbound(tx, message, token)), replayed: false };
        if (idem) await rememberResponse(tx, idem, { status: answer.status, body: answer.body }, deps.idempotencyTtlHours);
        return answer;
      }),
    // Only a fresh insert writes a receipt: a duplicate or a replay stored nothing, so it is never "committed".
    ([ids]): WriteResult => ({ status: 202, body: accepted(ids!), replayed: false }),
  );
  if (result.body.duplicate && !result.replayed) deps.metrics.webhookDuplicates.inc();
  else countWrite(deps.metrics, result, message);
  const keyword = result.body.duplicate || result.replayed ? null : inboundKeyword(message);
  if (keyword) countOptOut(deps.metrics, keyword, "inbound");
  return result;
}

/** Inserts an inbound message and applies the opt-out keyword it may be, in the caller's transaction. */
async function storeInbound(tx: SqlRunner, message: NewMessage, token: string): Promise<StoredIds> {
  const ids = await insertMessage(tx, message, token);
  // Only an outbound send is ever refused; an inbound insert always answers its ids.
  if (!ids) throw new Error("inbound insert stored nothing");
  await applyInboundKeyword(tx, message, ids.id);
  return ids;
}
