import { normalizeAddress } from "../../domain/channel.ts";
import type { BucketDecision } from "../../domain/token-bucket.ts";
import type { IdempotencyRequest } from "../../http/idempotency.ts";
import { AppError, validationFailed } from "../../http/errors.ts";
import { rateLimited } from "../../http/rate-limit.ts";
import { claimIdempotencyKey, rememberResponse } from "../idempotency/service.ts";
import { insertMessage, type NewMessage, type StoredIds } from "./repository.ts";
import type { MessagesDeps } from "./service.ts";
import { accepted, countWrite, type MessageInput, newMessage, replayedAccepted, type WriteResult, writeOnce } from "./write.ts";

/**
 * Accepts an outbound message (SPEC §3): sender rate limit, then one commit of the message, its
 * conversation update and its delivery job (grouped with concurrent sends by the batcher). With an
 * Idempotency-Key one transaction claims the key, charges the sender, writes and stores the response,
 * so a replay can never send twice and is never charged. Either way the answer matches the database when the
 * connection is lost mid-write (see `writeOnce`). An SMS/MMS to a recipient who opted out of its sender is
 * refused (422 `recipient_opted_out`) by the statement that would have stored it: nothing is stored or queued,
 * and an Idempotency-Key is not consumed (its transaction rolls back), so the same key may be sent again after
 * the recipient opts back in. A send with a future `send_at` is written the same ways (grouped or keyed), but stored
 * `scheduled`: it waits for the promoter (modules/scheduling) instead of entering the delivery queue, and is
 * charged and opt-out checked now all the same.
 */
export function sendMessage(deps: MessagesDeps, input: MessageInput, idem?: IdempotencyRequest): Promise<WriteResult> {
  try {
    const message = newMessage(input, "outbound", null);
    refuseUncarried(deps, input);
    if (idem) return sendKeyed(deps, message, idem).then((result) => settled(deps, message, result));
    // The unkeyed send, the common one, is a chain of callbacks on its batch rather than an async function:
    // each await is a promise and a turn of the microtask queue, paid by every request.
    const charging = chargeSender(deps, message);
    const written = charging ? charging.then(() => deps.batcher.submit(message)) : deps.batcher.submit(message);
    // Counted by the batcher, once per batch (service.ts).
    return written.then((ids) => woken(deps, message, { status: 202, body: accepted(storedOrRefused(deps, ids)), replayed: false }));
  } catch (err) {
    // A refusal known before anything is written (429, 400, 422) is a rejection like the others.
    return Promise.reject(err);
  }
}

function sendKeyed(deps: MessagesDeps, message: NewMessage, idem: IdempotencyRequest): Promise<WriteResult> {
  return writeOnce(
    deps.fence,
    deps.onOutcome,
    (token) =>
      deps.sql.transaction(async (tx): Promise<WriteResult> => {
        const stored = await claimIdempotencyKey(tx, idem);
        // A replay is not a send: it is answered before the sender is charged. A refusal below rolls the
        // transaction back, so a rate-limited request does not consume its key.
        if (stored) return { status: stored.status, body: replayedAccepted(stored.body), replayed: true };
        const charging = chargeSender(deps, message);
        if (charging) await charging;
        const body = accepted(storedOrRefused(deps, await insertMessage(tx, message, token)));
        await rememberResponse(tx, idem, { status: 202, body }, deps.idempotencyTtlHours);
        return { status: 202, body, replayed: false };
      }),
    // The receipt committed with the stored response, which holds exactly this answer.
    // (A refused send writes no receipt, so it never reads as committed.)
    ([ids]) => ({ status: 202, body: accepted(storedOrRefused(deps, ids ?? null)), replayed: false }),
  );
}

/** What follows a committed keyed send (or a replay): its metrics, and the wake-up of delivery or the scheduler. */
function settled(deps: MessagesDeps, message: NewMessage, result: WriteResult): WriteResult {
  countWrite(deps.metrics, result, message);
  return woken(deps, message, result);
}

/** Wakes delivery (or the scheduler) for a committed send; a replay wakes nothing. */
function woken(deps: MessagesDeps, message: NewMessage, result: WriteResult): WriteResult {
  if (!result.replayed) {
    if (message.sendAt) deps.onScheduled?.(message.sendAt);
    else deps.onOutboundCommitted?.();
  }
  return result;
}

/** The ids of a stored send; a send the statement refused for an opt-out becomes its 422. */
function storedOrRefused(deps: MessagesDeps, ids: StoredIds | null): StoredIds {
  if (ids) return ids;
  deps.metrics.sendsRefused.inc({ reason: "recipient_opted_out" });
  throw new AppError(
    "recipient_opted_out",
    "the recipient opted out of messages from this sender (they texted STOP, or the provider reported them unsubscribed); nothing was stored or sent",
    { details: [{ path: "to", message: "has opted out of messages from this sender" }] },
  );
}

/**
 * SPEC §3: a message no provider of its route can carry is refused before anything is stored or charged: a sender
 * no provider owns is `422 sender_not_allowed` naming the route, a limit every owner has (Twilio's 10 media, its
 * 1600 characters) a 400 naming it. A refused Idempotency-Key is not consumed (nothing ran).
 */
function refuseUncarried(deps: MessagesDeps, input: MessageInput): void {
  const refusal = deps.routeCheck?.(input.channel, input);
  if (refusal === undefined) return;
  deps.metrics.sendsRefused.inc({ reason: refusal.code === "limit" ? "provider_limit" : refusal.code });
  if (refusal.code === "limit") throw validationFailed([{ path: refusal.path, message: refusal.message }]);
  throw new AppError("sender_not_allowed", `${refusal.message}; nothing was stored or sent`, { details: [{ path: "from", message: "is not a sender of any provider of this route" }] });
}

/**
 * The per-sender limit of SPEC §3: a token bucket per normalized `from` on its transport. Answered synchronously
 * (undefined) by an in-process limiter, through a promise by the shared one.
 */
function chargeSender(deps: MessagesDeps, message: NewMessage): Promise<void> | undefined {
  // An SMS/MMS's opt-out pair already holds its sender normalized.
  const name = `sender:${message.transport}:${message.optOutPair?.from ?? normalizeAddress(message.transport, message.from)}`;
  if (deps.limiter.takeNow) {
    refuseOverLimit(deps, deps.limiter.takeNow(name, deps.senderBucket));
    return undefined;
  }
  return deps.limiter.take(name, deps.senderBucket).then((decision) => refuseOverLimit(deps, decision));
}

function refuseOverLimit(deps: MessagesDeps, decision: BucketDecision): void {
  if (!decision.allowed) {
    deps.metrics.rateLimited.inc({ limit: "sender" });
    throw rateLimited(decision, "this sender is sending too fast");
  }
}
