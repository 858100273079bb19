import type { Database } from "../../db/client.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { reportDelivery } from "../../delivery/reports.ts";
import { AppError } from "../../http/errors.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { type MessageInput, type MessagesDeps, receiveMessage, type WriteResult } from "../messages/service.ts";
import { type MockConfig, type MockConfigInput, mockConfigSchema, type MockReport, NEWER_FIELD_DEFAULTS } from "./model.ts";
import { readMockConfigText, writeMockConfig } from "./repository.ts";

export interface ProviderMockDeps {
  db: Database;
  /** Delivery reports go through the one status writer, which speaks SQL. */
  sql: SqlRunner;
  metrics: Metrics;
  messages: MessagesDeps;
  /** The configured starting point (API_PROVIDER_*), used until someone PUTs a config. */
  defaults: MockConfigInput;
}

/**
 * The mock provider's fault injection as stored in the database, so every instance and the delivery
 * engine read the same values at each dispatch (the older server's PUT changed nothing).
 */
export async function getMockConfig(deps: Pick<ProviderMockDeps, "sql" | "defaults">): Promise<MockConfig> {
  const text = await readMockConfigText(deps.sql);
  if (text === undefined) return { ...NEWER_FIELD_DEFAULTS, ...deps.defaults };
  if (text === lastParsed.text) return lastParsed.config ?? { ...NEWER_FIELD_DEFAULTS, ...deps.defaults };
  const stored = mockConfigSchema.safeParse(JSON.parse(text));
  lastParsed = { text, config: stored.success ? stored.data : undefined };
  return stored.success ? stored.data : { ...NEWER_FIELD_DEFAULTS, ...deps.defaults };
}

/** The last stored text parsed, so that reading an unchanged config costs one query and no validation. */
let lastParsed: { text?: string; config: MockConfig | undefined } = { config: undefined };

/** The configured starting point of the fault injection (API_PROVIDER_*), in force until someone PUTs a config. */
export function mockDefaults(config: {
  providerTimeoutPct: number;
  providerErrorPct: number;
  providerRatelimitPct: number;
  providerSeed?: number | undefined;
}): MockConfig {
  return {
    ...NEWER_FIELD_DEFAULTS,
    timeout_pct: config.providerTimeoutPct,
    error_pct: config.providerErrorPct,
    ratelimit_pct: config.providerRatelimitPct,
    seed: config.providerSeed ?? null,
  };
}

export async function putMockConfig(deps: ProviderMockDeps, config: MockConfig): Promise<MockConfig> {
  await writeMockConfig(deps.db, config);
  return config;
}

/** An injected inbound message: a message as any write takes it, plus the provider id of its channel's webhook. */
export interface MockInbound extends MessageInput {
  messaging_provider_id?: string | undefined;
  xillio_id?: string | undefined;
}

/** Injects an inbound message as if the provider had called the webhook; a missing provider id is generated. */
export function injectInbound(deps: ProviderMockDeps, m: MockInbound): Promise<WriteResult> {
  const providerMessageId = (m.channel === "email" ? m.xillio_id : m.messaging_provider_id) ?? `mock-${crypto.randomUUID()}`;
  return receiveMessage(deps.messages, {
    channel: m.channel,
    from: m.from,
    to: m.to,
    body: m.body,
    subject: m.subject,
    attachments: m.attachments,
    timestamp: m.timestamp,
    providerMessageId,
  });
}

export interface ReportAccepted {
  status: "accepted";
  id: string;
  message_status: string;
}

/**
 * Applies a delivery report as the mock provider's webhook would. A report the message has moved past is
 * still accepted (a provider would only resend a refused one); only an unknown or inbound message is a 404.
 */
export async function reportMock(deps: ProviderMockDeps, r: MockReport): Promise<ReportAccepted> {
  const target = r.message_id !== undefined ? { messageId: r.message_id } : { providerMessageId: r.provider_message_id! };
  const result = await reportDelivery(deps, { ...target, status: r.status, errorCode: r.error_code ?? null });
  if (!result.found) {
    // The provider id is the client's free text, so it is not echoed; a message id is digits by the schema.
    const named = r.message_id !== undefined ? `message ${r.message_id} is` : "that provider_message_id is";
    throw new AppError("not_found", `${named} not an outbound message`);
  }
  return { status: "accepted", id: result.messageId, message_status: result.status };
}
