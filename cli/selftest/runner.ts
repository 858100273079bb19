import { type Case, CaseFailure, CaseSkipped } from "./case.ts";
import type { Client } from "./client.ts";
import type { Target } from "./probe.ts";
import type { RunData } from "./run-data.ts";

export type Outcome = "passed" | "failed" | "skipped";

export interface CaseResult {
  id: string;
  title: string;
  tags: string[];
  spec: string;
  outcome: Outcome;
  /** Why it failed or was skipped. */
  reason?: string;
  notes: string[];
  /** Requests charged to the target's per-client rate limit (what makes a run slow against a low limit). */
  apiRequests: number;
  durationMs: number;
}

export interface Summary {
  passed: number;
  failed: number;
  skipped: number;
  durationMs: number;
}

/** Told of the run as it goes; the TTY and plain reporters print, the file reporters write at the end. */
export interface Reporter {
  start(info: { target: string; runId: string; total: number }): void;
  caseDone(result: CaseResult, done: number, total: number): void;
  finish(results: CaseResult[], summary: Summary): void | Promise<void>;
}

export interface RunOptions {
  http: Client;
  data: RunData;
  target: Target;
  timeoutSecs: number;
  reporters: Reporter[];
}

/** How long a case's clean-up may take, whatever the case's own timeout. */
const UNDO_TIMEOUT_MS = 10_000;

/** The one line every run ends with, and what CI logs grep for. */
export const summaryLine = (s: Summary) => `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`;

/**
 * Keeps the cases whose tags (or id) meet any of `only` (every case when it is empty), less those meeting any
 * of `skip`.
 */
export function selectCases(cases: readonly Case[], only: readonly string[], skip: readonly string[] = []): Case[] {
  const meets = (c: Case, selectors: readonly string[]) => selectors.some((tag) => c.id === tag || c.tags.includes(tag));
  return cases.filter((c) => (only.length === 0 || meets(c, only)) && !meets(c, skip));
}

/**
 * Runs the cases in two lanes at once: the mock lane (cases that change or wait on the mock provider) one
 * after another, and every other case one after another beside it. Within the mock lane, consecutive cases marked
 * `sideBySide` (they only wait on the service's clocks) run at once. Results come back in the cases' order.
 */
export async function runCases(cases: readonly Case[], options: RunOptions): Promise<{ results: CaseResult[]; summary: Summary }> {
  const started = Date.now();
  const total = cases.length;
  for (const r of options.reporters) r.start({ target: options.target.url, runId: options.data.runId, total });
  const results = new Map<Case, CaseResult>();
  let done = 0;
  const one = async (c: Case) => {
    const finished = options.http.caseStarted();
    const result = await runOne(c, options).finally(finished);
    results.set(c, result);
    done += 1;
    for (const r of options.reporters) r.caseDone(result, done, total);
  };
  const lane = async (laneCases: Case[]) => {
    for (let i = 0; i < laneCases.length; ) {
      let end = i + 1;
      if (laneCases[i]!.sideBySide) while (end < laneCases.length && laneCases[end]!.sideBySide) end += 1;
      await Promise.all(laneCases.slice(i, end).map(one));
      i = end;
    }
  };
  await Promise.all([lane(cases.filter((c) => c.lane !== "mock")), lane(cases.filter((c) => c.lane === "mock"))]);
  const ordered = cases.map((c) => results.get(c)!);
  const count = (o: Outcome) => ordered.filter((r) => r.outcome === o).length;
  const summary = { passed: count("passed"), failed: count("failed"), skipped: count("skipped"), durationMs: Date.now() - started };
  for (const r of options.reporters) await r.finish(ordered, summary);
  return { results: ordered, summary };
}

async function runOne(c: Case, options: RunOptions): Promise<CaseResult> {
  const started = Date.now();
  const controller = new AbortController();
  const base = { id: c.id, title: c.title, tags: c.tags, spec: c.spec, notes: [] as string[] };
  const http = options.http.withSignal(controller.signal);
  const finish = (outcome: Outcome, reason?: string): CaseResult => ({
    ...base,
    outcome,
    ...(reason === undefined ? {} : { reason }),
    apiRequests: http.apiRequests,
    durationMs: Date.now() - started,
  });

  for (const feature of c.needs ?? []) {
    const offered = options.target.features.get(feature);
    if (offered !== true) return finish("skipped", offered ?? `the probe did not learn whether the target offers ${feature}`);
  }

  const timeoutMs = Math.max(options.timeoutSecs, c.minTimeoutSecs ?? 0) * 1000;
  const undo: ((http: Client) => Promise<unknown>)[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new CaseFailure(`timed out after ${timeoutMs / 1000} s`);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
  });
  let result: CaseResult;
  try {
    await Promise.race([
      c.run({
        http,
        data: options.data,
        target: options.target,
        skip: (reason) => {
          throw new CaseSkipped(reason);
        },
        note: (line) => base.notes.push(line),
        defer: (fn) => undo.push(fn),
      }),
      timedOut,
    ]);
    result = finish("passed");
  } catch (err) {
    if (err instanceof CaseSkipped) result = finish("skipped", err.message);
    else if (err instanceof CaseFailure) result = finish("failed", err.message);
    else if (controller.signal.aborted) result = finish("failed", (controller.signal.reason as Error).message);
    else result = finish("failed", `${(err as Error)?.name ?? "Error"}: ${(err as Error)?.message ?? String(err)}`);
  } finally {
    clearTimeout(timer);
    controller.abort(new CaseFailure("the case has ended"));
  }
  // Clean-up runs whatever happened, newest first, each bounded; a failed clean-up fails the case.
  for (const fn of undo.reverse()) {
    try {
      await fn(options.http.withSignal(AbortSignal.timeout(UNDO_TIMEOUT_MS)));
    } catch (err) {
      const message = `clean-up failed: ${(err as Error)?.message ?? String(err)}`;
      result = { ...result, outcome: "failed", reason: result.reason ? `${result.reason}; ${message}` : message };
    }
  }
  return { ...result, apiRequests: http.apiRequests, durationMs: Date.now() - started };
}
