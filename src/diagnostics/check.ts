import { rootCauseMessage } from "../db/availability.ts";
import { existsSync } from "node:fs";
import { sql } from "drizzle-orm";
import { type Config, describeConfig, providersProblem } from "../config/index.ts";
import { openDatabase } from "../db/client.ts";
import { DataDirInUseError } from "../db/data-dir-lock.ts";
import { migrationStatus } from "../db/migrate.ts";
import type { SqlRunner } from "../db/runner.ts";
import { type CounterDrift, counterDrift, isExact, repairCounters } from "./counters.ts";
import { masterKeyCheck, storedCredentialChecks } from "./credentials.ts";

export type CheckLevel = "ok" | "warn" | "error";

export interface CheckResult {
  name: string;
  level: CheckLevel;
  message: string;
}

export interface CheckReport {
  ok: boolean;
  checks: CheckResult[];
  config: Record<string, unknown>;
}

export interface CheckOptions {
  /** Recompute the conversation counters from the rows (`--repair-counters`) instead of only comparing them. */
  repairCounters?: boolean;
}

/**
 * What `messaging check` verifies: the configuration (already parsed by the caller), the database
 * (reachable, migrations current and unedited, counters equal to the rows) and settings that are legal but
 * insecure. Errors make the report fail; warnings do not.
 */
export async function runChecks(config: Config, options: CheckOptions = {}): Promise<CheckReport> {
  const checks: CheckResult[] = [{ name: "config", level: "ok", message: "configuration is valid" }];
  checks.push(providersCheck(config));
  checks.push(masterKeyCheck(config));
  checks.push(...insecureSettings(config));
  checks.push(...(await databaseChecks(config, options)));
  return { ok: checks.every((c) => c.level !== "error"), checks, config: describeConfig(config) };
}

/**
 * The providers: none is legal (every channel goes to the built-in mock) but worth a warning, since nothing a
 * caller sends leaves the machine; one whose API the egress guard refuses is the error `serve` would refuse to
 * start with. (Their credentials are checked with the database: diagnostics/credentials.ts.)
 */
function providersCheck(config: Config): CheckResult {
  if (config.providers.length === 0) {
    return { name: "providers", level: "warn", message: "no providers are configured: every channel uses the built-in mock and nothing leaves this machine" };
  }
  const problem = providersProblem(config);
  if (problem !== undefined) return { name: "providers", level: "error", message: problem };
  const names = config.providers.map((p) => `${p.name} (${p.kind})`);
  return { name: "providers", level: "ok", message: `${names.join(", ")}; routes: sms → ${config.deliveryRoutes.sms.join(", ")}, mms → ${config.deliveryRoutes.mms.join(", ")}, email → ${config.deliveryRoutes.email.join(", ")}` };
}

function insecureSettings(config: Config): CheckResult[] {
  const out: CheckResult[] = [];
  if (config.auth === "off") {
    out.push({ name: "auth", level: "warn", message: "MESSAGING_AUTH=off: /api routes accept requests without an API key" });
  } else {
    out.push({ name: "auth", level: "ok", message: "/api routes need an API key (`messaging keys list` shows them)" });
  }
  if (config.webhookSecrets.length === 0) {
    out.push({
      name: "webhook-signatures",
      level: "warn",
      message: "MESSAGING_WEBHOOK_SECRETS is not set: /api/webhooks/* and /api/provider/mock/inbound accept unsigned requests",
    });
  }
  if (!config.securityHeadersEnabled) {
    out.push({ name: "security-headers", level: "warn", message: "SECURITY_HEADERS_ENABLED=false: responses lack the security headers" });
  }
  if (config.publicUrl?.startsWith("http://")) {
    out.push({ name: "public-url", level: "warn", message: "MESSAGING_PUBLIC_URL is plain http; serve the API over TLS" });
  }
  return out;
}

async function databaseChecks(config: Config, options: CheckOptions): Promise<CheckResult[]> {
  if (!config.databaseUrl && !existsSync(config.dataDir)) {
    // Checking must not create the embedded database (initdb takes seconds and leaves a directory behind).
    return [{ name: "database", level: "warn", message: `no embedded database in ${config.dataDir} yet; \`messaging serve\` creates and migrates it` }];
  }
  let database;
  try {
    database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
    await database.db.execute(sql`select 1`);
  } catch (err) {
    await database?.close().catch(() => {});
    if (err instanceof DataDirInUseError) {
      // A running `serve` owns the embedded database; its /readyz is where that database is checked.
      return [{ name: "database", level: "warn", message: `${err.message}; check the running service's /readyz instead` }];
    }
    return [{ name: "database", level: "error", message: `cannot reach the database: ${rootCauseMessage(err)}` }];
  }
  try {
    const out: CheckResult[] = [{ name: "database", level: "ok", message: `${database.describe} answers` }];
    const status = await migrationStatus(database.db);
    const modified = status.filter((s) => s.state === "modified").map((s) => s.tag);
    const pending = status.filter((s) => s.state === "pending").map((s) => s.tag);
    if (modified.length > 0) {
      out.push({ name: "migrations", level: "error", message: `applied migrations were edited: ${modified.join(", ")}` });
    } else if (pending.length > 0) {
      // The embedded database is migrated by `serve` itself; PostgreSQL needs `migrate up` first.
      const level: CheckLevel = database.kind === "embedded" ? "warn" : "error";
      out.push({ name: "migrations", level, message: `${pending.length} pending: ${pending.join(", ")}; run \`messaging migrate up\`` });
    } else {
      out.push({ name: "migrations", level: "ok", message: `all ${status.length} migration(s) applied` });
      out.push(await countersCheck(database.sql, options.repairCounters ?? false));
      out.push(...(await storedCredentialChecks(config, database)));
    }
    return out;
  } catch (err) {
    return [{ name: "migrations", level: "error", message: `cannot read migration status: ${rootCauseMessage(err)}` }];
  } finally {
    await database.close();
  }
}

const describeDrift = (d: CounterDrift) =>
  `the counters say ${d.counted} conversation(s), the table holds ${d.conversations}; ${d.messageCountsOff} message_count(s) off`;

/**
 * The counters behind `meta.total` and `message_count` against the rows (a full count: about 0.2 s per
 * million conversations). Drift is an error, because the API would answer wrong totals; `--repair-counters`
 * recomputes them and says what it changed.
 */
async function countersCheck(sql: SqlRunner, repair: boolean): Promise<CheckResult> {
  try {
    if (repair) {
      const { before, after } = await repairCounters(sql);
      if (!isExact(after)) return { name: "counters", level: "error", message: `still off after the repair: ${describeDrift(after)}` };
      if (isExact(before)) return { name: "counters", level: "ok", message: `exact (${after.conversations} conversations); nothing to repair` };
      return { name: "counters", level: "ok", message: `repaired: ${describeDrift(before)}; now exact (${after.conversations} conversations)` };
    }
    const drift = await counterDrift(sql);
    if (isExact(drift)) return { name: "counters", level: "ok", message: `exact (${drift.conversations} conversations)` };
    return { name: "counters", level: "error", message: `${describeDrift(drift)}; run \`messaging check --repair-counters\`` };
  } catch (err) {
    return { name: "counters", level: "error", message: `cannot read the counters: ${rootCauseMessage(err)}` };
  }
}
