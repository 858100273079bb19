/**
 * Puts the credential store together for `serve`: the master keys (generated into the data directory on the
 * embedded database when none is configured, and said so), the store loaded from the database, its polling and
 * NOTIFY-driven reloads, and what they tell the log and /metrics. Lives beside delivery-wiring.ts, whose adapters
 * and the webhook routes read the store.
 */
import type { Config } from "./config/index.ts";
import { type DatabaseHandle, EMBEDDED_BACKSTOP_POLL_MS } from "./db/client.ts";
import type { Logger } from "./observability/logger.ts";
import type { Metrics } from "./observability/metrics.ts";
import { CREDENTIALS_CHANNEL, CredentialStore, type ReloadReport } from "./security/credentials.ts";
import type { MasterKey } from "./security/keyring.ts";
import { masterKeysOrGenerate } from "./security/master-key-source.ts";

export interface RunningCredentials {
  store: CredentialStore;
  /** False on PostgreSQL without MESSAGING_MASTER_KEYS(_FILE): nothing stored can be read. */
  hasMasterKey: boolean;
  /** The master keys (the first encrypts): what event endpoint secrets are stored under. Empty without one. */
  keys: readonly MasterKey[];
  stop(): Promise<void>;
}

/** Opens the store over an open, migrated database. Throws MasterKeyError for an unusable key setting or file. */
export async function startCredentials(config: Config, database: DatabaseHandle, metrics: Metrics, logger: Logger): Promise<RunningCredentials> {
  const master = masterKeysOrGenerate(config);
  if (master?.generated) {
    logger.info({ path: master.generated }, "no master key was configured: generated one for the credential store");
    process.stderr.write(
      `messaging: no master key was configured, so one was generated in ${master.generated} (mode 0600). ` +
        "Back it up with the data directory: the stored provider credentials cannot be read without it.\n",
    );
  } else if (!master) {
    logger.warn("no master key is configured (MESSAGING_MASTER_KEYS or MESSAGING_MASTER_KEYS_FILE): provider credentials can be neither stored nor read");
  }
  let failing = false;
  const store = new CredentialStore(database.sql, master?.keys ?? [], {
    // Only this process can write the embedded database's credentials (the data directory's lock keeps `messaging
    // creds` out while `serve` runs), and its writers reload the store at once (`credentialsChanged`).
    ...(database.kind === "embedded" && { pollMs: EMBEDDED_BACKSTOP_POLL_MS }),
    onReload: (report) => {
      if (failing) logger.info("provider credentials can be read again");
      failing = false;
      reportLoad(report, metrics, logger);
    },
    onPollError: (err) => {
      metrics.credentialReloadFailures.inc();
      if (!failing) logger.warn({ err }, "cannot read provider credentials; the values loaded before are used until it works again");
      failing = true;
    },
  });
  await store.load();
  store.start();
  let unlisten = async () => {};
  if (database.pubsub) {
    unlisten = await database.pubsub.listen(CREDENTIALS_CHANNEL, () => void store.poll()).catch((err: unknown) => {
      logger.warn({ err }, "cannot LISTEN for credential changes; they are picked up by polling");
      return async () => {};
    });
  }
  return {
    store,
    hasMasterKey: master !== null,
    keys: master?.keys ?? [],
    stop: async () => {
      store.stop();
      await unlisten().catch(() => {});
    },
  };
}

/** One log line per load, an error line per credential that does not decrypt, and the gauge. */
function reportLoad(report: ReloadReport, metrics: Metrics, logger: Logger): void {
  metrics.credentialReloads.inc();
  metrics.credentialsLoaded.set({ state: "readable" }, report.versions - report.unreadable.length);
  metrics.credentialsLoaded.set({ state: "unreadable" }, report.unreadable.length);
  logger.info({ versions: report.versions, unreadable: report.unreadable.length }, "provider credentials loaded");
  for (const err of report.unreadable) {
    logger.error({ provider: err.ref.provider, name: err.ref.name, version: err.ref.version, reason: err.reason }, err.message);
  }
}
