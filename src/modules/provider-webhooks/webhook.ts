/**
 * What every provider webhook shares: its dependencies, the lookup of the provider its URL names, the count of its
 * outcome, and the 401 and 400 answers it gives.
 */
import type { z } from "zod";
import type { ProviderConfig } from "../../providers/config.ts";
import type { SqlRunner } from "../../db/runner.ts";
import { type DeliveryReport, type ReportResult, reportDelivery, reportWhenStored } from "../../delivery/reports.ts";
import { AppError, type ErrorDetail, validationFailed } from "../../http/errors.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { CredentialLookup } from "../../security/credential-lookup.ts";
import { CredentialError } from "../../security/keyring.ts";
import type { MessageLimits } from "../messages/model.ts";
import type { MessagesDeps } from "../messages/service.ts";
import type { WebhookKind, WebhookOutcome } from "./model.ts";

export interface ProviderWebhookDeps {
  providers: readonly ProviderConfig[];
  credentials: CredentialLookup;
  /** MESSAGING_PUBLIC_URL: the base of the URL Twilio signs. Without it, the URL the request arrived at. */
  publicUrl?: string | undefined;
  sql: SqlRunner;
  messages: MessagesDeps;
  metrics: Metrics;
  logger: Logger;
  limits: MessageLimits;
  /**
   * How long a delivery report naming no stored message is tried again (in this process): the dispatcher may
   * not have written the provider's id yet when a quick report arrives.
   */
  unmatchedRetryMs: number;
  /** Unix seconds; tests move it. */
  nowSecs?: () => number;
}

export type TwilioConfig = Extract<ProviderConfig, { kind: "twilio" }>;
export type SendGridConfig = Extract<ProviderConfig, { kind: "sendgrid" }>;
type KindConfig = { twilio: TwilioConfig; sendgrid: SendGridConfig };

/** Unix seconds now, by the deps' clock. */
export const nowSecs = (deps: Pick<ProviderWebhookDeps, "nowSecs">) => (deps.nowSecs ?? (() => Math.floor(Date.now() / 1000)))();

/**
 * The configured provider of that kind named by the URL, or 404: a webhook URL for a provider that does not exist
 * (or exists with another kind) is not a route at all.
 */
export function configuredProvider<K extends keyof KindConfig>(deps: Pick<ProviderWebhookDeps, "providers">, kind: K, name: string): KindConfig[K] {
  const provider = deps.providers.find((p) => p.name === name && p.kind === kind);
  if (!provider) throw new AppError("not_found", `no ${kind} provider of that name is configured`);
  return provider as KindConfig[K];
}

/** Runs one webhook and counts its outcome; a 401 counts as `unauthorized`, a 400 as `invalid`, and is rethrown. */
export async function counted<T>(deps: ProviderWebhookDeps, provider: string, kind: WebhookKind, run: () => Promise<[WebhookOutcome, T]>): Promise<T> {
  const count = (outcome: WebhookOutcome) => deps.metrics.providerWebhooks.inc({ provider, kind, outcome });
  try {
    const [outcome, value] = await run();
    count(outcome);
    return value;
  } catch (err) {
    if (err instanceof AppError && err.status === 401) count("unauthorized");
    else if (err instanceof AppError && err.status === 400) count("invalid");
    throw err;
  }
}

/** A 401 whose reason is logged (with the provider) but not answered. */
export const refused = (message: string, logDetail: string, headers?: Record<string, string>) =>
  new AppError("unauthorized", message, { logDetail, ...(headers ? { headers } : {}) });

/**
 * Every value of a credential that verifies a webhook now. A stored one that no longer decrypts (a master key
 * removed too early) is the service's fault, not the caller's: 503, so the provider retries once the operator has
 * fixed the keys (`messaging check` names the credential), rather than a 401 that reads as a forgery.
 */
export function verifyingCredentials(deps: Pick<ProviderWebhookDeps, "credentials">, provider: string, name: string): readonly string[] {
  try {
    return deps.credentials.verifying(provider, name);
  } catch (err) {
    if (!(err instanceof CredentialError)) throw err;
    throw new AppError("service_unavailable", "the service cannot verify this webhook right now", { logDetail: err.message, headers: { "retry-after": "60" } });
  }
}

/** The parsed value, or a 400 naming each offending field (never echoing its value). */
export function validated<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details: ErrorDetail[] = result.error.issues.slice(0, 20).map((issue) => ({
    path: issue.path.length > 0 ? issue.path.join(".") : "root",
    message: issue.message,
  }));
  throw validationFailed(details);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new AppError("bad_request", "request body is not valid UTF-8");
  }
}

/** The first wait before a report that named no message is tried again. */
const UNMATCHED_FIRST_RETRY_MS = 500;

/**
 * Applies a delivery report; one naming no stored message is tried again for a while in the background
 * (reportWhenStored), since the dispatcher may not have written the provider's id yet, and is answered as unmatched.
 */
export async function applyReport(deps: ProviderWebhookDeps, source: string, report: DeliveryReport): Promise<ReportResult> {
  const result = await reportDelivery(deps, report);
  if (!result.found) {
    const retry = { giveUpAt: Date.now() + deps.unmatchedRetryMs, firstWaitMs: UNMATCHED_FIRST_RETRY_MS, source };
    setTimeout(() => reportWhenStored(deps, report, retry), UNMATCHED_FIRST_RETRY_MS).unref();
  }
  return result;
}
