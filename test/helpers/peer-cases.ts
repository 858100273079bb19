/**
 * The older messaging-service's HTTP cases, read at run time from `shared/peer/tests.json` beside the repository
 * (never copied into it), and played against a running server with the semantics of `shared/tools/peer-suite.sh`:
 * one request per try, the status must match and the optional jq filter must hold on the response body.
 *
 *   const cases = loadPeerCases();                        // undefined when shared/ is not beside the repository
 *   const outcome = await playPeerCase(baseUrl, cases[0]);  // { passed, report }
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** Where the cases live: `<repo>/../shared/peer/tests.json`, as in CI (a fresh clone with shared/ beside it). */
export const PEER_CASES_PATH = join(import.meta.dir, "..", "..", "..", "shared", "peer", "tests.json");

export interface PeerCase {
  name: string;
  method: string;
  path: string;
  /** `"Name: value"` lines. */
  headers?: string[];
  /** Sent as JSON with `Content-Type: application/json`; `null` sends no body. */
  body?: unknown;
  /** The expected status. */
  expect: number;
  /** A jq filter on the response body; the case passes when its last output is neither false nor null. */
  assert?: string | null;
  /** Wait before the first try. */
  delay_ms?: number | null;
  /** Pause between tries of a GET. */
  assert_poll_ms?: number | null;
  assert_max_tries?: number | null;
}

/** The cases in file order, or undefined when the file is absent (the repository run without shared/). */
export function loadPeerCases(path = PEER_CASES_PATH): PeerCase[] | undefined {
  if (!existsSync(path)) return undefined;
  const cases = JSON.parse(readFileSync(path, "utf8")) as unknown;
  if (!Array.isArray(cases)) throw new Error(`${path}: expected an array of cases`);
  return cases as PeerCase[];
}

/** Why assertions cannot be evaluated, or undefined when the real `jq` is on PATH. */
export function jqMissing(): string | undefined {
  return Bun.which("jq") ? undefined : "jq is not on PATH: the older service's cases assert with jq filters (.ci/run installs it from Debian)";
}

/** Runs `jq -e filter` on the body, as peer-suite.sh does: true when jq exits 0. */
async function jqHolds(filter: string, body: string): Promise<boolean> {
  const missing = jqMissing();
  if (missing) throw new Error(missing);
  const jq = Bun.spawn(["jq", "-e", filter], { stdin: new Blob([body]), stdout: "ignore", stderr: "ignore" });
  return (await jq.exited) === 0;
}

function requestInit(c: PeerCase): RequestInit {
  // curl's default Accept, which the script relies on; a case's own headers replace it.
  const headers = new Headers({ accept: "*/*" });
  for (const line of c.headers ?? []) {
    const colon = line.indexOf(":");
    if (colon < 1) throw new Error(`case "${c.name}": header ${JSON.stringify(line)} is not "Name: value"`);
    headers.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const init: RequestInit = { method: c.method, headers, signal: AbortSignal.timeout(10_000) };
  if (c.body !== null && c.body !== undefined) {
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    init.body = JSON.stringify(c.body);
  }
  return init;
}

export interface PeerOutcome {
  passed: boolean;
  /** What the last try got, for the failure message: method, path, expectation, status and the body's start. */
  report: string;
}

/** Plays one case against `baseUrl`: delay, then up to `assert_max_tries` tries (pausing between GETs). */
export async function playPeerCase(baseUrl: string, c: PeerCase): Promise<PeerOutcome> {
  if (c.delay_ms) await Bun.sleep(c.delay_ms);
  const tries = c.assert_max_tries ?? 1;
  let status = 0;
  let body = "";
  for (let attempt = 1; attempt <= tries; attempt++) {
    try {
      const res = await fetch(`${baseUrl}${c.path}`, requestInit(c));
      status = res.status;
      body = await res.text();
    } catch (err) {
      status = 0;
      body = `request failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (status === c.expect && (!c.assert || (await jqHolds(c.assert, body)))) return { passed: true, report: "passed" };
    if (c.method === "GET" && c.assert_poll_ms && attempt < tries) await Bun.sleep(c.assert_poll_ms);
  }
  const expectation = `${c.expect}${c.assert ? ` and ${c.assert}` : ""}`;
  return { passed: false, report: `${c.method} ${c.path} expected ${expectation}, got ${status}: ${body.slice(0, 300)}` };
}
