import { rootCauseMessage } from "../../db/availability.ts";
import { sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { isCurrent, migrationStatus } from "../../db/migrate.ts";
import type { StorageHealth } from "../../db/storage-health.ts";
import { withTimeout } from "../../with-timeout.ts";

/**
 * Why the service is not ready, twice: `reason` is safe for anyone who can reach /readyz; `detail` names the
 * database (host, port) and the driver's error, so it goes to the log only.
 */
export type Readiness = { ok: true } | { ok: false; reason: string; detail: string };

/**
 * Answers /readyz: the database must answer within a deadline and every embedded migration must be applied.
 * Once the migrations are seen current they stay current for this binary, so only the ping repeats.
 */
export class ReadinessProbe {
  private migrationsCurrent = false;

  constructor(
    private readonly db: Database,
    private readonly describe: string,
    private readonly timeoutMs = 2000,
    /** Another reason not to be ready (a required Redis that does not answer), or null. */
    private readonly extra: () => string | null = () => null,
    /** While the database is out of space the service is not ready, whatever a read says (db/storage-health.ts). */
    private readonly storage?: Pick<StorageHealth, "recheck">,
  ) {}

  async check(): Promise<Readiness> {
    try {
      if (this.storage && (await withTimeout(this.storage.recheck(), this.timeoutMs))) {
        return { ok: false, reason: "storage full", detail: `${this.describe} is out of storage space; writes fail until space returns` };
      }
      await withTimeout(this.db.execute(sql`select 1`), this.timeoutMs);
      if (!this.migrationsCurrent) {
        const status = await withTimeout(migrationStatus(this.db), this.timeoutMs);
        if (!isCurrent(status)) {
          const pending = status.filter((s) => s.state !== "applied" && s.state !== "unknown").map((s) => `${s.tag} (${s.state})`);
          return {
            ok: false,
            reason: "migrations are pending; run `messaging migrate up`",
            detail: `migrations not current on ${this.describe}: ${pending.join(", ")}`,
          };
        }
        this.migrationsCurrent = true;
      }
      const other = this.extra();
      if (other !== null) return { ok: false, reason: other, detail: other };
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: "the database is unavailable", detail: `${this.describe}: ${rootCauseMessage(err)}` };
    }
  }
}

/** True when the client ranks JSON above Prometheus text (the older suite asks /metrics for JSON). */
export function acceptsJsonFirst(accept: string | null): boolean {
  if (!accept) return false;
  let json = 0;
  let text = 0;
  for (const range of accept.split(",")) {
    const [type, ...params] = range.split(";");
    const media = type!.trim().toLowerCase();
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    const q = qParam ? Number(qParam.slice(2)) || 0 : 1;
    if (media === "application/json") json = Math.max(json, q);
    else if (media === "text/plain" || media === "text/*" || media === "*/*") text = Math.max(text, q);
  }
  return json > 0 && json >= text;
}
