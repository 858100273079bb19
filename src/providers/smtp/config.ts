/** An SMTP relay's entry in the config file (src/providers/config.ts holds what every kind shares). */
import { z } from "zod";
import type { Channel } from "../../domain/channel.ts";

export const SMTP_CHANNELS: readonly Channel[] = ["email"];

export interface SmtpSettings {
  host: string;
  port: number;
  secure: boolean;
  requireTls?: boolean;
  user?: string;
}

const text = z.string().trim().min(1, "must be a non-empty string");

export const smtpKeys = {
  host: text,
  port: z.number().int().min(1).max(65535),
  secure: z.boolean().default(false),
  require_tls: z.boolean().optional(),
  user: text.optional(),
};

export function readSmtp(entry: Record<string, unknown>): SmtpSettings {
  const settings: SmtpSettings = { host: entry.host as string, port: entry.port as number, secure: entry.secure as boolean };
  if (typeof entry.require_tls === "boolean") settings.requireTls = entry.require_tls;
  if (typeof entry.user === "string") settings.user = entry.user;
  return settings;
}

/** A relay that authenticates needs its password; an open relay (on the private network) needs nothing. */
export const smtpSecrets = (settings: SmtpSettings): string[] => (settings.user !== undefined ? ["password"] : []);
