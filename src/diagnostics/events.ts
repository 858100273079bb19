import { isCurrent } from "../db/migrate.ts";
import { rootCauseMessage } from "../db/availability.ts";
import { endpointBacklog } from "../events/deliveries.ts";
import { listEndpoints } from "../events/endpoints.ts";
import type { DatabaseCheckContext } from "./database-checks.ts";
import type { CheckResult } from "./result.ts";

/** An endpoint whose oldest undelivered event is older than this is far behind (the alert's threshold too). */
export const FAR_BEHIND_SECONDS = 15 * 60;

/**
 * The event endpoints (SPEC §10) an operator must look at: one that is disabled (410 Gone, or failing for
 * MESSAGING_EVENT_DISABLE_AFTER_HOURS) keeps its events until `enable`, and one far behind is failing or too
 * slow for its traffic. Warnings, not errors: the service itself runs, but a client app misses news. URLs are
 * shown by host only (their paths may carry tokens).
 */
export async function eventEndpointsCheck({ database, migrations }: DatabaseCheckContext): Promise<CheckResult[]> {
  if (!isCurrent(migrations)) return [];
  try {
    const [endpoints, backlog] = await Promise.all([listEndpoints(database.sql), endpointBacklog(database.sql)]);
    if (endpoints.length === 0) return [{ check: "event-endpoints", status: "ok", message: "no event endpoints registered (GET /api/events serves the feed)" }];
    const behind = new Map(backlog.map((b) => [b.endpointId, b]));
    const out: CheckResult[] = [];
    for (const e of endpoints) {
      const host = URL.parse(e.url)?.host ?? "?";
      if (e.disabled_at !== null) {
        out.push({
          check: "event-endpoints",
          status: "warn",
          message: `endpoint ${e.id} (${host}) is disabled since ${e.disabled_at}: ${e.disabled_reason}; ${e.pending} event(s) wait for \`messaging events endpoints enable ${e.id}\``,
        });
        continue;
      }
      const oldest = behind.get(e.id)?.oldestSeconds ?? 0;
      if (oldest > FAR_BEHIND_SECONDS) {
        const why = e.last_delivery?.error ? `; last error: ${e.last_delivery.error}` : "";
        out.push({
          check: "event-endpoints",
          status: "warn",
          message: `endpoint ${e.id} (${host}) is ${Math.round(oldest / 60)} min behind with ${e.pending} event(s) pending${why}`,
        });
      }
    }
    if (out.length === 0) out.push({ check: "event-endpoints", status: "ok", message: `${endpoints.length} endpoint(s), none disabled or behind` });
    return out;
  } catch (err) {
    return [{ check: "event-endpoints", status: "error", message: `cannot read the event endpoints: ${rootCauseMessage(err)}` }];
  }
}
