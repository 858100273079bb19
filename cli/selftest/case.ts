import type { Answer, Client } from "./client.ts";
import type { RunData } from "./run-data.ts";
import type { Target } from "./probe.ts";

/**
 * One promise of the contract checked from outside. `area` groups cases in the reports (JUnit suites); `tags`
 * select them with `--only` (the area is always one of them).
 */
export interface Case {
  /** Stable and unique: `<area>.<name>`, what reports and `--only` name. */
  id: string;
  title: string;
  tags: string[];
  /** SPEC section(s) the case checks, for the reader of a failure. */
  spec: string;
  /**
   * Cases that change or depend on the mock provider's state run one after another in the mock lane, apart from
   * the rest, so a fault injected by one never meets a delivery another is waiting for.
   */
  lane?: "mock";
  /**
   * A mock-lane case that changes nothing of the mock provider's state and spends its time waiting on the
   * service's own clocks (a `send_at`): consecutive such cases of the mock lane run at once, not one after another.
   */
  sideBySide?: boolean;
  /** Features the target must offer; when one is missing the case is skipped with the probe's reason. */
  needs?: Feature[];
  /** A floor under `--timeout` for a case that waits on the service's own clocks (a breaker's cool-down). */
  minTimeoutSecs?: number;
  run(ctx: CaseContext): Promise<void>;
}

/** What a target may or may not offer, learnt by the probe before any case runs. */
export type Feature = "auth" | "mock" | "webhooks" | "signing" | "https";

export interface CaseContext {
  http: Client;
  data: RunData;
  target: Target;
  /** Ends the case as skipped, with the reason in every report. */
  skip(reason: string): never;
  /** Adds a line to the case's report (what was seen, when it is worth knowing). */
  note(line: string): void;
  /**
   * Runs `undo` once the case has ended, passed, failed or timed out, with a client of its own (the case's is
   * aborted by then): how a case that changes the target's state puts it back.
   */
  defer(undo: (http: Client) => Promise<unknown>): void;
}

/** Thrown by `fail` and the checks below; the runner reports its message as the case's failure. */
export class CaseFailure extends Error {
  override name = "CaseFailure";
}

/** Thrown by `ctx.skip`. */
export class CaseSkipped extends Error {
  override name = "CaseSkipped";
}

export function fail(message: string): never {
  throw new CaseFailure(message);
}

export function check(condition: unknown, message: string): asserts condition {
  if (!condition) fail(message);
}

/** Equality of JSON-like values, reported with both sides. */
export function checkEqual(actual: unknown, expected: unknown, what: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) fail(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

/** The answer has this status; otherwise the failure shows what came instead (status and the start of the body). */
export function checkStatus(answer: Answer, expected: number | number[], what: string): void {
  const allowed = Array.isArray(expected) ? expected : [expected];
  if (!allowed.includes(answer.status)) fail(`${what}: expected HTTP ${allowed.join(" or ")}, got ${answer.status} ${clip(answer.text)}`);
}

const SNAKE_CASE = /^[a-z][a-z0-9_]*$/;

/**
 * SPEC §2's error envelope: status, a JSON body `{code, message, request_id}` with the code expected (one of them
 * when several are allowed), `details` a list of `{path, message}` when present, and the request id also in the
 * `X-Request-Id` header.
 */
export function checkError(answer: Answer, status: number, codes: string | string[], what: string): void {
  checkStatus(answer, status, what);
  const body = answer.body;
  check(answer.json !== undefined, `${what}: the error body is not JSON: ${clip(answer.text)}`);
  check((answer.headers.get("content-type") ?? "").toLowerCase().includes("application/json"), `${what}: the error is not served as application/json`);
  const allowed = Array.isArray(codes) ? codes : [codes];
  check(typeof body.code === "string" && SNAKE_CASE.test(body.code), `${what}: the error has no snake_case code: ${clip(answer.text)}`);
  check(allowed.includes(body.code as string), `${what}: expected code ${allowed.join(" or ")}, got ${String(body.code)}`);
  check(typeof body.message === "string" && body.message.length > 0, `${what}: the error has no message`);
  check(typeof body.request_id === "string" && body.request_id.length > 0, `${what}: the error has no request_id`);
  check(answer.headers.get("x-request-id") === body.request_id, `${what}: request_id differs from the X-Request-Id header`);
  if (body.details !== undefined) {
    check(Array.isArray(body.details), `${what}: details is not a list`);
    for (const d of body.details as unknown[]) {
      const detail = d as Record<string, unknown>;
      check(typeof detail?.path === "string" && typeof detail?.message === "string", `${what}: a detail is not {path, message}: ${show(d)}`);
    }
  }
}

/** The 400 of a rule violation, naming `field` in the message or in a detail's path. */
export function checkFieldRefused(answer: Answer, field: string, what: string): void {
  checkError(answer, 400, ["validation_failed", "bad_request"], what);
  const details = (answer.body.details as { path: string; message: string }[] | undefined) ?? [];
  const named = String(answer.body.message).includes(field) || details.some((d) => d.path === field || d.path.split(".").includes(field) || d.message.includes(field));
  check(named, `${what}: the 400 does not name the field "${field}": ${clip(answer.text)}`);
}

/** A 202 of a send or webhook: `{status: "accepted", id, conversation_id}`, both ids decimal strings. */
export function checkAccepted(answer: Answer, what: string): { id: string; conversationId: string } {
  checkStatus(answer, 202, what);
  const { status, id, conversation_id } = answer.body;
  checkEqual(status, "accepted", `${what}: status`);
  check(typeof id === "string" && /^[1-9]\d*$/.test(id), `${what}: id is not a decimal string: ${show(id)}`);
  check(typeof conversation_id === "string" && /^[1-9]\d*$/.test(conversation_id), `${what}: conversation_id is not a decimal string: ${show(conversation_id)}`);
  return { id, conversationId: conversation_id };
}

/** RFC 3339 in UTC with `Z` (SPEC §2). */
export function checkUtcTimestamp(value: unknown, what: string): void {
  check(typeof value === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(value), `${what}: not an RFC 3339 UTC timestamp with Z: ${show(value)}`);
}

export const show = (value: unknown) => clip(JSON.stringify(value) ?? String(value));

export const clip = (text: string, max = 200) => (text.length > max ? `${text.slice(0, max)}…` : text);
