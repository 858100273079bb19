// Channels a message is sent on, and the transport that groups them into
// conversations.

import { normalizeEmail, normalizePhone } from "./address";

/** The kind of message a client asked for. */
export type Channel = "sms" | "mms" | "email";

/** The network a message travels on; conversations are per transport. */
export type Transport = "sms" | "email";

/** Every channel, for schemas and exhaustive checks. */
export const CHANNELS: readonly Channel[] = ["sms", "mms", "email"];

/** Every transport, for schemas and exhaustive checks. */
export const TRANSPORTS: readonly Transport[] = ["sms", "email"];

/**
 * SMS and MMS between two phones travel the same network and a person sees
 * one thread, so both map to the `sms` transport (SPEC §1).
 */
export function transportOf(channel: Channel): Transport {
  return channel === "email" ? "email" : "sms";
}

/**
 * Picks the normalization that matches the transport, so callers never have
 * to know whether an address is a phone number or a mailbox.
 */
export function normalizeAddress(transport: Transport, raw: string): string {
  return transport === "email" ? normalizeEmail(raw) : normalizePhone(raw);
}
