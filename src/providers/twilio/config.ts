/**
 * A Twilio provider's entry in the config file: the account, and how it sends (a messaging service, the senders it
 * owns, or both). Read by src/providers/config.ts, which holds what every kind shares.
 */
import { z } from "zod";
import type { Channel } from "../../domain/channel.ts";

export const TWILIO_API_BASE_URL = "https://api.twilio.com";
export const TWILIO_CHANNELS: readonly Channel[] = ["sms", "mms"];

/** Twilio documents at most 10 `MediaUrl` per message. */
export const TWILIO_MAX_MEDIA = 10;
/** Twilio's documented limit for `Body`: 1600 characters (counted as UTF-16 code units by Twilio's API). */
export const TWILIO_MAX_BODY = 1600;

export interface TwilioSettings {
  accountSid: string;
  messagingServiceSid?: string;
  apiKeySid?: string;
}

const text = z.string().trim().min(1, "must be a non-empty string");

/** The keys only Twilio entries have (beside the common ones). */
export const twilioKeys = { account_sid: text, messaging_service_sid: text.optional(), api_key_sid: text.optional() };

/** A Twilio provider must know what to send from: its own senders, or a messaging service whose pool decides. */
export function twilioProblem(entry: { senders?: readonly unknown[]; messaging_service_sid?: string }): string | undefined {
  return entry.senders === undefined && entry.messaging_service_sid === undefined ? "needs senders (or from) or messaging_service_sid" : undefined;
}

export function readTwilio(entry: Record<string, unknown>): TwilioSettings {
  const settings: TwilioSettings = { accountSid: entry.account_sid as string };
  if (typeof entry.messaging_service_sid === "string") settings.messagingServiceSid = entry.messaging_service_sid;
  if (typeof entry.api_key_sid === "string") settings.apiKeySid = entry.api_key_sid;
  return settings;
}

/** The credential it sends with: an API key's secret when one is configured, else the account's auth token. */
export const twilioSecrets = (settings: TwilioSettings): string[] => (settings.apiKeySid !== undefined ? ["api_key_secret"] : ["auth_token"]);

/** What a Twilio provider's webhooks lack in the configuration: its status callback is built on the public URL. */
export function twilioWebhookGap(names: readonly string[], publicUrl: string | undefined): string | undefined {
  if (names.length === 0 || publicUrl !== undefined) return undefined;
  return `no MESSAGING_PUBLIC_URL, so ${names.join(", ")} send no StatusCallback and their messages never go past sent`;
}

/**
 * Twilio signs its webhooks with the account's auth token even when an API key sends: the providers sending with a
 * key that have no auth_token stored, whose every status callback and inbound message will be refused (401).
 */
export function twilioUnverifiable<P extends { name: string } & TwilioSettings>(providers: readonly P[], has: (provider: string, name: string) => boolean): P[] {
  return providers.filter((p) => p.apiKeySid !== undefined && !has(p.name, "auth_token"));
}
