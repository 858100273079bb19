import { runPeriodically } from "../../db/periodic.ts";
import type { SqlRunner } from "../../db/runner.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { type Purged, purgeBatch } from "./repository.ts";

/** Messages per purge statement: small enough that each commit is quick and holds few locks. */
export const RETENTION_BATCH = 1000;

/**
 * Deletes every message older than `days` days, a batch per statement (each its own transaction), until a
 * batch deletes nothing. Messages of conversations busy at that moment are left for the next run.
 */
export async function purgeOldMessages(sql: SqlRunner, days: number, batch = RETENTION_BATCH): Promise<Purged> {
  const total: Purged = { messages: 0, conversations: 0 };
  for (;;) {
    const purged = await purgeBatch(sql, days, batch);
    total.messages += purged.messages;
    total.conversations += purged.conversations;
    if (purged.messages === 0) return total;
  }
}

/**
 * Runs the purge now and then every `intervalMs` on every instance (unref'd): concurrent runs take disjoint
 * conversations (see repository.ts), so running it twice deletes nothing twice. Returns a function that stops it.
 */
export function scheduleRetention(
  sql: SqlRunner,
  days: number,
  onRun: (result: Purged | { error: unknown }) => void,
  intervalMs = 10 * 60 * 1000,
): () => void {
  return runPeriodically(() => purgeOldMessages(sql, days), (r) => onRun("error" in r ? r : r.value), intervalMs);
}

/** What a run tells the operator: the metrics and a log line when it purged something, a warning when it failed. */
export function retentionReporter(metrics: Metrics, logger: Logger, days: number) {
  return (result: Purged | { error: unknown }): void => {
    if ("error" in result) logger.warn({ err: result.error }, "retention purge failed");
    else if (result.messages > 0) {
      metrics.retentionPurged.inc({ what: "messages" }, result.messages);
      metrics.retentionPurged.inc({ what: "conversations" }, result.conversations);
      logger.info({ ...result, retention_days: days }, "messages past retention purged");
    }
  };
}
