/**
 * Delivery reports: a provider telling us what became of a message after it accepted it (SPEC §7). The mock
 * provider's route calls this today; the webhooks of real providers will call the same function, so every
 * report goes through one lookup and the one status writer (status.ts), and a late or repeated report is
 * answered as a no-op instead of moving a message back.
 */
import type { SqlRunner } from "../db/runner.ts";
import type { MessageStatus } from "../domain/message-status.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { advanceStatuses } from "./status.ts";

/** What a provider can report about a message it accepted. */
export type ReportedStatus = "sent" | "delivered" | "failed" | "undelivered";

/** A message named by our id or by the id its provider gave it, never both. */
export type ReportTarget = { messageId: string; providerMessageId?: never } | { providerMessageId: string; messageId?: never };

export type DeliveryReport = ReportTarget & {
  status: ReportedStatus;
  /** The provider's error code; kept as the message's status reason when the report fails it. */
  errorCode?: string | null;
};

export type ReportResult = { found: false } | { found: true; messageId: string; status: MessageStatus; changed: boolean };

export interface ReportDeps {
  sql: SqlRunner;
  metrics?: Metrics;
}

/*
 * The lookups lock the row so the status answered for a report that changed nothing is the one it lost to,
 * not an older read. Only outbound messages have a delivery to report on; the provider-id lookup is the
 * partial index messages_outbound_provider_idx (hence the repeated IS NOT NULL). Provider ids are not unique
 * across providers; the first message given one wins, as the id a provider reports names one message.
 */
const BY_ID = `SELECT id::text AS id, status FROM messages WHERE id = $1 AND direction = 'outbound' FOR UPDATE`;
const BY_PROVIDER_ID = `
  SELECT id::text AS id, status FROM messages
   WHERE provider_message_id = $1 AND direction = 'outbound' AND provider_message_id IS NOT NULL
   ORDER BY id LIMIT 1 FOR UPDATE`;

/** Our ids are positive integers below 2^53; anything else names no message (and would not cast to bigint). */
const isMessageId = (raw: string) => /^[1-9][0-9]{0,15}$/.test(raw) && Number.isSafeInteger(Number(raw));

/**
 * Applies one delivery report. A report that cannot move the status (a repeat, a late `sent` after
 * `delivered`, a step back) changes nothing and still answers `found: true` with the current status, since a
 * provider retries a report it sees refused. A report that settles the message takes it out of the delivery
 * queue in the same status write (status.ts), so the dispatcher does not retry a message a provider settled; a
 * worker holding it finds the status moved when it writes its result.
 */
export async function reportDelivery(deps: ReportDeps, report: DeliveryReport): Promise<ReportResult> {
  if (report.messageId !== undefined && !isMessageId(report.messageId)) return { found: false };
  const result = await deps.sql.transaction(async (tx): Promise<ReportResult> => {
    const [message] = report.messageId !== undefined
      ? await tx.query<{ id: string; status: MessageStatus }>(BY_ID, [report.messageId])
      : await tx.query<{ id: string; status: MessageStatus }>(BY_PROVIDER_ID, [report.providerMessageId]);
    if (!message) return { found: false };
    const fails = report.status === "failed" || report.status === "undelivered";
    const [advanced] = await advanceStatuses(tx, [{ messageId: message.id, to: report.status, reason: fails ? (report.errorCode ?? null) : null }]);
    const changed = advanced?.moved === true;
    const status = advanced?.moved ? advanced.status : message.status;
    return { found: true, messageId: message.id, status, changed };
  });
  if (result.found && result.changed) deps.metrics?.messagesStatus.inc({ status: result.status });
  return result;
}

export interface ReportRetry {
  /** Wall-clock ms after which a report still naming no message is dropped (and logged). */
  giveUpAt: number;
  /** The first wait; each later one doubles, up to 10 s. */
  firstWaitMs: number;
  /** Who reported, for the log lines: "the mock provider", "twilio-main". */
  source: string;
}

const REPORT_RETRY_MAX_MS = 10_000;

/**
 * Applies a report that may arrive before the provider id it names is stored. The dispatcher writes a batch's
 * acceptances once the batch's slowest call has answered (up to the provider timeout), and a provider may report
 * within that window (the mock 200 ms after accepting; a carrier's receipt can be as quick). A report naming no
 * message is therefore tried again with doubling waits until `giveUpAt`, in this process: a provider that was
 * already answered will not send it again. Settles nothing the caller waits for; failures are logged.
 */
export function reportWhenStored(deps: ReportDeps & { logger: Logger }, report: DeliveryReport, retry: ReportRetry): void {
  reportDelivery(deps, report).then(
    (result) => {
      if (result.found) return;
      if (Date.now() + retry.firstWaitMs > retry.giveUpAt) {
        const target = report.messageId !== undefined ? { message_id: report.messageId } : { provider_message_id: report.providerMessageId };
        deps.logger.warn({ ...target, status: report.status }, `a delivery report of ${retry.source} names no message; dropped`);
        return;
      }
      const next = { ...retry, firstWaitMs: Math.min(retry.firstWaitMs * 2, REPORT_RETRY_MAX_MS) };
      setTimeout(() => reportWhenStored(deps, report, next), retry.firstWaitMs).unref();
    },
    (err: unknown) => deps.logger.warn({ err }, `a delivery report of ${retry.source} could not be recorded`),
  );
}
