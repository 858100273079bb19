import { ALL_CASES } from "./cases/index.ts";
import { Client, RateBudget } from "./client.ts";
import { ProbeError, probeTarget } from "./probe.ts";
import { JsonReporter } from "./reporters/json.ts";
import { JunitReporter } from "./reporters/junit.ts";
import { PlainReporter } from "./reporters/plain.ts";
import { TtyReporter } from "./reporters/tty.ts";
import { RunData } from "./run-data.ts";
import { type Reporter, runCases, selectCases, type Summary } from "./runner.ts";

export interface SelftestOptions {
  target: string;
  token?: string | undefined;
  webhookSecret?: string | undefined;
  only: string[];
  skip: string[];
  timeoutSecs: number;
  reportJunit?: string | undefined;
  reportJson?: string | undefined;
  tty: boolean;
  write: (text: string) => void;
}

/** A run that could not start: the probe's one line. */
export type SelftestOutcome = { kind: "ran"; summary: Summary } | { kind: "unreachable"; message: string };

/** Every tag a case carries (and every case id), for `--only` to be checked against. */
export function knownSelectors(): Set<string> {
  return new Set(ALL_CASES.flatMap((c) => [c.id, ...c.tags]));
}

/** Probes the target, then runs the selected cases with the reporters asked for. */
export async function runSelftest(options: SelftestOptions): Promise<SelftestOutcome> {
  // The limit questions (the rate-limit case's "ran out") are about the lane the run's own requests are charged to.
  const budget = new RateBudget(Boolean(options.token));
  const http = new Client({ target: options.target, token: options.token, webhookSecret: options.webhookSecret }, budget);
  let target;
  try {
    const probeTimeout = AbortSignal.timeout(Math.min(options.timeoutSecs, 10) * 1000);
    target = await probeTarget(http.withSignal(probeTimeout), options.target, {
      haveToken: options.token !== undefined,
      haveSecret: options.webhookSecret !== undefined,
    });
  } catch (err) {
    if (err instanceof ProbeError) return { kind: "unreachable", message: err.message };
    if ((err as Error)?.name === "TimeoutError") return { kind: "unreachable", message: `${options.target} did not answer the probe within ${Math.min(options.timeoutSecs, 10)} s` };
    throw err;
  }
  const reporters: Reporter[] = [options.tty ? new TtyReporter(options.write) : new PlainReporter(options.write)];
  if (options.reportJunit) reporters.push(new JunitReporter(options.reportJunit));
  if (options.reportJson) reporters.push(new JsonReporter(options.reportJson));
  const cases = selectCases(ALL_CASES, options.only, options.skip);
  const { summary } = await runCases(cases, { http, data: new RunData(), target, timeoutSecs: options.timeoutSecs, reporters });
  return { kind: "ran", summary };
}
