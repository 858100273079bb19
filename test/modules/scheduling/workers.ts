/** The delivery side of `serve` for the scheduling tests: a dispatcher and a promoter over a test app's database. */
import { Writable } from "node:stream";
import { Dispatcher, type DispatcherOptions } from "../../../src/delivery/dispatcher.ts";
import { Promoter } from "../../../src/modules/scheduling/service.ts";
import { createLogger } from "../../../src/observability/logger.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { accepted, type Provider, type ProviderOutcome } from "../../../src/providers/provider.ts";
import { ProviderRegistry } from "../../../src/providers/registry.ts";
import { VERSION } from "../../../src/version.ts";
import type { TestApp } from "../../helpers/app.ts";

export const silent = createLogger({ level: "silent", destination: new Writable({ write: (_c, _e, done) => done() }) });

/** Accepts everything and remembers when each message was handed to it. */
export class RecordingProvider implements Provider {
  readonly calls = new Map<string, number[]>();
  constructor(readonly name = "rec") {}
  async send(message: { id: string }): Promise<ProviderOutcome> {
    const list = this.calls.get(message.id) ?? [];
    list.push(Date.now());
    this.calls.set(message.id, list);
    return accepted(`rec-${message.id}`);
  }
  callsOf(id: string): number {
    return this.calls.get(id)?.length ?? 0;
  }
}

export const DISPATCH: DispatcherOptions = {
  workers: 2,
  batchSize: 50,
  pollMs: 50,
  leaseMs: 2000,
  maxAttempts: 5,
  maxAgeMs: 3_600_000,
  backoff: { baseMs: 20, capMs: 200 },
  breaker: { failureThreshold: 5, openMs: 30_000 },
  sampleMs: 100,
};

/** The delivery side of one `serve`: a dispatcher and a promoter over `t`'s database. */
export function startWorkers(t: TestApp, provider: Provider, options: { pollMs?: number; batchSize?: number; dispatch?: Partial<DispatcherOptions> } = {}) {
  const registry = new ProviderRegistry(
    { routes: { sms: [provider.name], mms: [provider.name], email: [provider.name] }, providers: [{ name: provider.name, kind: "mock", timeoutMs: 1000 }] },
    () => provider,
  );
  const metrics = createMetrics({ version: VERSION });
  const dispatcher = new Dispatcher({ sql: t.database.sql, registry, metrics, logger: silent }, { ...DISPATCH, ...options.dispatch });
  const promoter = new Promoter(
    { sql: t.database.sql, metrics, logger: silent, onQueued: () => dispatcher.wake() },
    { pollMs: options.pollMs ?? 100, batchSize: options.batchSize ?? 100, sampleMs: 100, paceMs: 10 },
  );
  dispatcher.start();
  promoter.start();
  return {
    dispatcher,
    promoter,
    metrics,
    stop: async () => {
      await promoter.stop();
      await dispatcher.stop(1000);
    },
  };
}

