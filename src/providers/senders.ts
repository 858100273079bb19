/**
 * Which providers of a route can carry a message, known before it is stored (SPEC §3): a provider that lists its
 * `senders` carries only messages from one of them; Twilio carries at most 10 media and 1600 characters of body.
 * The send path refuses what no provider of the route can carry (`422 sender_not_allowed`, `400` naming the limit),
 * and the registry tries, in a failover chain, only the providers that can carry the message.
 */
import type { Channel } from "../domain/channel.ts";
import { normalizePhone } from "../domain/address.ts";
import { mailboxAddress } from "../domain/mailbox.ts";
import type { Sender } from "./config.ts";
import { TWILIO_MAX_BODY, TWILIO_MAX_MEDIA } from "./twilio/config.ts";

/** What a provider can carry, as far as the send path can know it. */
export interface Capacity {
  /** Absent: any sender. */
  senders?: readonly Sender[];
  /** Most attachments (media) one message may have; absent: no limit of its own. */
  maxAttachments?: number;
  /** Most UTF-16 code units of body; absent: no limit of its own. */
  maxBodyUnits?: number;
}

/** The part of a message these rules read. */
export interface Carried {
  from: string;
  body: string;
  attachments: readonly string[];
}

/** The limits of a kind's API (Twilio's documented ones); other kinds have none the service must enforce. */
export function kindCapacity(kind: string): Omit<Capacity, "senders"> {
  return kind === "twilio" ? { maxAttachments: TWILIO_MAX_MEDIA, maxBodyUnits: TWILIO_MAX_BODY } : {};
}

/** Whether a provider owning `senders` may send from `from` on `channel`; no `senders`: any sender. */
export function ownsSender(senders: readonly Sender[] | undefined, channel: Channel, from: string): boolean {
  if (senders === undefined) return true;
  if (channel === "email") {
    const address = mailboxAddress(from).toLowerCase();
    const domain = address.slice(address.lastIndexOf("@") + 1);
    return senders.some((s) => (s.kind === "email" && s.address === address) || (s.kind === "domain" && s.domain === domain));
  }
  const number = normalizePhone(from);
  return senders.some((s) => s.kind === "phone" && s.number === number);
}

/** The display name the senders give `address` (written `Name <address>` in `senders`), if any. */
export function senderName(senders: readonly Sender[] | undefined, address: string): string | undefined {
  const wanted = address.trim().toLowerCase();
  for (const s of senders ?? []) if (s.kind === "email" && s.address === wanted && s.name !== undefined) return s.name;
  return undefined;
}

/** Why a provider cannot carry `message` (sender aside), or undefined when it can. */
export function limitProblem(capacity: Capacity, message: Carried): { path: string; message: string } | undefined {
  if (capacity.maxAttachments !== undefined && message.attachments.length > capacity.maxAttachments) {
    return { path: "attachments", message: `must hold at most ${capacity.maxAttachments} attachments on this route (its providers' limit)` };
  }
  // Twilio counts Body in UTF-16 code units (an emoji outside the BMP is two), like JavaScript's length.
  if (capacity.maxBodyUnits !== undefined && message.body.length > capacity.maxBodyUnits) {
    return { path: "body", message: `must be at most ${capacity.maxBodyUnits} UTF-16 code units on this route (its providers' limit; an emoji counts as 2)` };
  }
  return undefined;
}

/** Whether the provider can carry the message at all: it owns the sender and the message is within its limits. */
export const carries = (capacity: Capacity, channel: Channel, message: Carried): boolean =>
  ownsSender(capacity.senders, channel, message.from) && limitProblem(capacity, message) === undefined;

/** What the send path answers for a message no provider of its route can carry. */
export type RouteRefusal =
  | { code: "sender_not_allowed"; message: string }
  | { code: "limit"; path: string; message: string };

/**
 * Checks a message against its route's providers: none owns the sender → sender_not_allowed (naming the route);
 * every owner refuses it for a limit → that limit (the first owner's). Undefined: some provider can carry it.
 */
export function routeRefusal(chain: readonly { name: string; capacity: Capacity }[], channel: Channel, message: Carried): RouteRefusal | undefined {
  const owners = chain.filter((p) => ownsSender(p.capacity.senders, channel, message.from));
  if (owners.length === 0) {
    return { code: "sender_not_allowed", message: `no provider of the ${channel} route (${chain.map((p) => p.name).join(", ")}) owns this sender` };
  }
  let first: { path: string; message: string } | undefined;
  for (const owner of owners) {
    const problem = limitProblem(owner.capacity, message);
    if (problem === undefined) return undefined;
    first ??= problem;
  }
  return { code: "limit", ...first! };
}
