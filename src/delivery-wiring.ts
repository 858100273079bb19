/**
 * Puts delivery together for `serve`: the registry of configured providers (each kind's adapter, or the built-in
 * mock for every route when none are configured),
 * the mock's stored fault injection read before every claim (so a `PUT /api/provider/mock/config` on any
 * instance changes the very next dispatch), its delivery reports, the wake-ups from committed sends, and the
 * dispatcher itself. Lives beside app.ts because it joins a module (the mock's config) to the delivery layer.
 */
import type { DatabaseHandle } from "./db/client.ts";
import { Dispatcher, effectiveLeaseMs } from "./delivery/dispatcher.ts";

import { reportWhenStored } from "./delivery/reports.ts";
import { DELIVERY_CHANNEL, DeliveryWake } from "./delivery/wake.ts";
import { getMockConfig, mockDefaults } from "./modules/provider-mock/service.ts";
import type { Logger } from "./observability/logger.ts";
import type { Limiter } from "./limits/limiter.ts";
import type { Metrics } from "./observability/metrics.ts";
import { sqlMockLedger } from "./modules/provider-mock/ledger.ts";
import { MockProvider, type MockSettings } from "./providers/mock/adapter.ts";
import { buildProvider } from "./providers/build.ts";
import type { ServiceConfig } from "./providers/config.ts";
import { ProviderRegistry, registryConfig } from "./providers/registry.ts";
import type { CredentialLookup } from "./security/credential-lookup.ts";

export interface Delivery {
  /** Tell it an outbound message committed. */
  wake: DeliveryWake;
  /** The workers of this process; undefined when `MESSAGING_DELIVERY_WORKERS=0`. */
  dispatcher?: Dispatcher;
  start(): Promise<void>;
  /** Stops the workers (see Dispatcher.stop) and stops listening. */
  stop(timeoutMs: number, graceMs: number): Promise<void>;
}

export function createDelivery(
  config: ServiceConfig,
  database: DatabaseHandle,
  metrics: Metrics,
  logger: Logger,
  credentials: CredentialLookup,
  /** The limiter shared through Redis, when configured: providers' `max_per_second` then holds across instances. */
  sharedLimiter?: Limiter,
): Delivery {
  const pubsub = database.pubsub;
  const wake = new DeliveryWake(pubsub ? () => pubsub.notify(DELIVERY_CHANNEL) : undefined);
  if (config.deliveryWorkers === 0) {
    return { wake, start: async () => {}, stop: async () => {} };
  }
  const defaults = mockDefaults(config);
  let mockSettings: MockSettings = defaults;
  const ledger = sqlMockLedger(database.sql);
  let retryReportsForMs = 0;
  const onDelivered = (providerMessageId: string) =>
    reportWhenStored(
      { sql: database.sql, metrics, logger },
      { providerMessageId, status: "delivered" },
      { giveUpAt: Date.now() + retryReportsForMs, firstWaitMs: REPORT_RETRY_FIRST_MS, source: "the mock provider" },
    );
  let usesMock = false;
  const mocks = new Set<string>();
  const mock = (name: string) => {
    usesMock = true;
    mocks.add(name);
    return new MockProvider(name, { config: () => mockSettings, ledger, onDelivered });
  };
  const configured = new Map(config.providers.map((p) => [p.name, p]));
  const registry = new ProviderRegistry(
    registryConfig({ routes: config.deliveryRoutes, timeoutMs: config.providerTimeoutMs, rates: config.providerRates, providers: config.providers }),
    (spec) => {
      const provider = configured.get(spec.name);
      return provider === undefined || provider.kind === "mock" ? mock(spec.name) : buildProvider(config, provider, spec.timeoutMs, credentials);
    },
  );
  // A result is written within a lease; one lost with its write is re-sent and written within the next.
  retryReportsForMs = 2 * effectiveLeaseMs(config.deliveryLeaseMs, registry);
  const dispatcher = new Dispatcher(
    {
      sql: database.sql,
      registry,
      metrics,
      logger,
      ...(sharedLimiter ? { sharedLimiter } : {}),
      ...(database.session ? { session: database.session() } : {}),
      // Only a mock reads the stored config; a registry of real providers spares every claim the query.
      ...(usesMock
        ? {
            beforeClaim: async () => {
              mockSettings = await getMockConfig({ sql: database.sql, defaults });
            },
            // A test may shorten the mock's breaker cool-down at run time (selftest's breaker case does).
            breakerOpenMs: (provider: string) =>
              mocks.has(provider) && typeof mockSettings.breaker_open_secs === "number" ? mockSettings.breaker_open_secs * 1000 : undefined,
          }
        : {}),
    },
    {
      workers: config.deliveryWorkers,
      batchSize: config.deliveryBatchSize,
      pollMs: config.deliveryPollMs,
      leaseMs: config.deliveryLeaseMs,
      takeoverMs: config.deliveryTakeoverMs,
      singleProcess: database.kind === "embedded",
      maxAttempts: config.deliveryMaxAttempts,
      maxAgeMs: config.deliveryMaxAgeSecs * 1000,
      backoff: { baseMs: config.deliveryBackoffBaseMs, capMs: config.deliveryBackoffCapMs },
      breaker: { failureThreshold: config.breakerErrorThreshold, openMs: config.breakerOpenSecs * 1000 },
    },
  );
  wake.attach(() => dispatcher.wake());
  let unlisten = async () => {};
  return {
    wake,
    dispatcher,
    start: async () => {
      if (pubsub) {
        unlisten = await pubsub.listen(DELIVERY_CHANNEL, () => dispatcher.wake()).catch((err: unknown) => {
          logger.warn({ err }, "cannot LISTEN for other instances' sends; their messages are found by polling");
          return async () => {};
        });
      }
      dispatcher.start();
    },
    stop: async (timeoutMs, graceMs) => {
      await unlisten().catch(() => {});
      await dispatcher.stop(timeoutMs, graceMs);
    },
  };
}

/** The mock reports 200 ms after accepting; its report is first tried again soon after. */
const REPORT_RETRY_FIRST_MS = 250;
