/** A SendGrid provider's entry in the config file (src/providers/config.ts holds what every kind shares). */
import { z } from "zod";
import type { Channel } from "../../domain/channel.ts";

export const SENDGRID_DEFAULT_BASE_URL = "https://api.sendgrid.com";
export const SENDGRID_CHANNELS: readonly Channel[] = ["email"];

export interface SendGridSettings {
  /** The public key (base64 DER) its signed Event Webhook verifies with. */
  eventVerificationKey?: string;
}

const text = z.string().trim().min(1, "must be a non-empty string");

export const sendgridKeys = { event_verification_key: text.optional() };

export function readSendGrid(entry: Record<string, unknown>): SendGridSettings {
  return typeof entry.event_verification_key === "string" ? { eventVerificationKey: entry.event_verification_key } : {};
}

export const sendgridSecrets = (): string[] => ["api_key"];

/** What a SendGrid provider's event webhook lacks: without its verification key, every event post is refused. */
export function sendgridWebhookGap(name: string, settings: SendGridSettings): string | undefined {
  return settings.eventVerificationKey === undefined ? `${name} has no event_verification_key, so its event webhook refuses every post (no delivered or bounce)` : undefined;
}
