// End to end: how `messaging serve` (the compiled binary) stops while clients misbehave, on both databases.
// A raw socket plays the client that declares a body and never finishes sending it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, killAll, type ServeProcess, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate, createMigratedTestDatabase, prepareEmbeddedTemplates, type TestDatabase } from "../helpers/database.ts";

const SHUTDOWN_TIMEOUT_MS = 1500;
/** What a stop may add to the shutdown timeout: answering the cut-short requests, closing the database, exiting. */
const SHUTDOWN_SLACK_MS = 3000;
const BODY_TIMEOUT_MS = 1500;

const SEND = JSON.stringify({ from: "+15550001111", to: "+15550002222", type: "sms", body: "hello", attachments: null, timestamp: "2024-11-01T12:00:00Z" });

/** A client on a raw socket: what it received so far, and whether the server has closed the connection. */
interface RawClient {
  write(text: string): void;
  received(): string;
  closed: Promise<void>;
  isClosed(): boolean;
  end(): void;
}

async function rawClient(port: number): Promise<RawClient> {
  const socket: Socket = connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let text = "";
  let closed = false;
  socket.on("data", (chunk) => (text += chunk.toString("utf8")));
  socket.on("error", () => {}); // a reset counts as closed
  const closedPromise = new Promise<void>((resolve) =>
    socket.once("close", () => {
      closed = true;
      resolve();
    }),
  );
  return {
    write: (s) => socket.write(s),
    received: () => text,
    closed: closedPromise,
    isClosed: () => closed,
    end: () => socket.destroy(),
  };
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The complete final responses in `text` (a `100 Continue` is skipped), in order. */
function responses(text: string): RawResponse[] {
  const found: RawResponse[] = [];
  let rest = text;
  for (;;) {
    const headEnd = rest.indexOf("\r\n\r\n");
    if (headEnd === -1) return found;
    const [statusLine, ...lines] = rest.slice(0, headEnd).split("\r\n");
    const headers = Object.fromEntries(
      lines.map((l) => [l.slice(0, l.indexOf(":")).trim().toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
    );
    const length = Number(headers["content-length"] ?? 0);
    if (rest.length < headEnd + 4 + length) return found;
    const status = Number(statusLine!.split(" ")[1]);
    if (status !== 100) found.push({ status, headers, body: rest.slice(headEnd + 4, headEnd + 4 + length) });
    rest = rest.slice(headEnd + 4 + length);
  }
}

async function waitFor<T>(what: string, probe: () => T | undefined, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

const nthResponse = (client: RawClient, n: number, ms = 10_000) =>
  waitFor(`response ${n}`, () => responses(client.received())[n - 1], ms);

/** A send whose `Content-Length` promises more than the client ever writes. */
async function abandonedBody(port: number): Promise<RawClient> {
  const client = await rawClient(port);
  client.write(
    `POST /api/messages/sms HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${SEND.length + 20}\r\n\r\n${SEND}`,
  );
  return client;
}

/** A send that asks `Expect: 100-continue` and then sends nothing. */
async function abandonedExpect(port: number): Promise<RawClient> {
  const client = await rawClient(port);
  client.write(
    `POST /api/messages/sms HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${SEND.length}\r\nExpect: 100-continue\r\n\r\n`,
  );
  await waitFor("100 Continue", () => (client.received().startsWith("HTTP/1.1 100") ? true : undefined), 5000);
  return client;
}

function expectEnvelope(response: RawResponse, status: number, code: string): void {
  expect(response.status).toBe(status);
  const body = JSON.parse(response.body) as Record<string, unknown>;
  expect(body).toEqual({ code, message: expect.any(String), request_id: expect.any(String) });
  expect(response.headers["x-request-id"]).toBe(body.request_id as string);
  expect(response.headers["x-content-type-options"]).toBe("nosniff");
}

/** PostgreSQL's cluster state in `global/pg_control` (the int32 after the system id and two versions): 1 = shut down. */
function clusterState(dataDir: string): number {
  return readFileSync(join(dataDir, "global", "pg_control")).readInt32LE(16);
}
const DB_SHUTDOWNED = 1;

/**
 * Sends one complete send first: on a busy machine the first request of a fresh process can take long enough to
 * reach the handler that a SIGTERM sent soon after would overtake it.
 */
async function warmUp(s: ServeProcess): Promise<void> {
  const res = await fetch(`${s.url}/api/messages/sms`, { method: "POST", headers: { "content-type": "application/json" }, body: SEND });
  expect(res.status).toBe(202);
}

interface Target {
  name: string;
  start(env?: Record<string, string>): Promise<ServeProcess>;
  /** Checks that the database was left closed; on the embedded one, that PostgreSQL recorded a clean shutdown. */
  expectClosedCleanly(): void;
}

const scratch: string[] = [];
const running: ServeProcess[] = [];
const databases: TestDatabase[] = [];

/** A migrated database of its own, so each test can run beside the others (their waits are timers, not work). */
function postgresTarget(): Target {
  let pg: TestDatabase | undefined;
  return {
    name: "PostgreSQL",
    start: async (env = {}) => {
      if (!pg) databases.push((pg = await createMigratedTestDatabase()));
      const s = await startServe({ cwd: tmpdir(), args: ["--migrate"], env: { DATABASE_URL: pg.url, ...env } });
      running.push(s);
      return s;
    },
    expectClosedCleanly: () => {},
  };
}

function embeddedTarget(): Target {
  const dir = mkdtempSync(join(tmpdir(), "msg-test-shutdown-"));
  scratch.push(dir);
  const dataDir = join(dir, "messaging-data");
  let copied: Promise<void> | undefined;
  return {
    name: "embedded",
    // The first start finds the run's migrated template copied in (initdb takes a while on a busy machine).
    start: async (env = {}) => {
      await (copied ??= copyEmbeddedTemplate(dataDir, { migrated: true }));
      const s = await startServe({ cwd: dir, env, timeoutMs: 150_000 });
      running.push(s);
      return s;
    },
    expectClosedCleanly: () => expect(clusterState(dataDir)).toBe(DB_SHUTDOWNED),
  };
}

beforeAll(async () => {
  await ensureBinary();
  await prepareEmbeddedTemplates();
}, 180_000);
afterAll(async () => {
  killAll(running);
  await Promise.all(databases.map((d) => d.drop()));
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

const SHUTDOWN_ENV = { MESSAGING_SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) };

// Each test has a database of its own and runs beside the other tests of its database kind: what they wait for is
// the shutdown and body timers, and each bound is measured from its own process's signal or request.
describe.each([["PostgreSQL", postgresTarget], ["embedded", embeddedTarget]] as const)("serve on %s", (_name, makeTarget) => {
  test.concurrent.each([
    ["a Content-Length larger than the body sent", abandonedBody],
    ["Expect: 100-continue and no body", abandonedExpect],
  ])("after an abandoned request (%s), SIGTERM exits 0 within the shutdown timeout, closes the database, and it reopens cleanly", async (_variant, abandon) => {
    const target = makeTarget();
    const s = await target.start(SHUTDOWN_ENV);
    await warmUp(s);
    const client = await abandon(s.port);
    await Bun.sleep(500); // the request is in the handler, waiting for its body
    const signalledAt = Date.now();
    const code = await s.stop();
    const elapsed = Date.now() - signalledAt;

    expect(code).toBe(0);
    expect(elapsed).toBeGreaterThanOrEqual(SHUTDOWN_TIMEOUT_MS - 100); // it did wait for the request
    expect(elapsed).toBeLessThan(SHUTDOWN_TIMEOUT_MS + SHUTDOWN_SLACK_MS);
    expect(s.stdout()).toContain('"msg":"stopped"'); // logged only once the database has closed
    target.expectClosedCleanly();
    // The abandoned client was told, in the envelope, and its connection closed.
    const [answer] = responses(client.received());
    expectEnvelope(answer!, 503, "service_unavailable");
    expect(answer!.headers.connection).toBe("close");
    await client.closed;
    // The database reopens cleanly after that shutdown.
    const again = await target.start();
    expect((await fetch(`${again.url}/readyz`)).status).toBe(200);
    expect(await again.stop()).toBe(0);
    target.expectClosedCleanly();
  }, 60_000);

  test.concurrent("/readyz answers 503 as soon as SIGTERM arrives, while an in-flight request is still open and then finishes", async () => {
    const target = makeTarget();
    const s = await target.start({ MESSAGING_SHUTDOWN_TIMEOUT_MS: "8000" });
    const probe = await rawClient(s.port); // a load balancer's kept-alive connection
    probe.write("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
    expect((await nthResponse(probe, 1)).status).toBe(200);
    await warmUp(s);
    const slow = await abandonedBody(s.port);
    await Bun.sleep(500);

    process.kill(s.pid, "SIGTERM");
    await waitFor("the shutdown to begin", () => (s.stdout().includes("shutting down") ? true : undefined), 5000);
    probe.write("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
    const during = await nthResponse(probe, 2, 2000);
    expectEnvelope(during, 503, "service_unavailable");
    expect(JSON.parse(during.body).message).toBe("the service is shutting down");
    expect(slow.received()).toBe(""); // still in flight, not cut off
    expect(slow.isClosed()).toBe(false);

    // The in-flight send completes its body during the drain: it is stored and answered, and the process then
    // exits without waiting out the shutdown timeout.
    slow.write(" ".repeat(20));
    expect((await nthResponse(slow, 1)).status).toBe(202);
    const finishedAt = Date.now();
    expect(await s.exited()).toBe(0);
    expect(Date.now() - finishedAt).toBeLessThan(4000);
    target.expectClosedCleanly();
    probe.end();
  }, 60_000);

  test.concurrent("a body trickled a byte at a time gets 408 request_timeout within the bound, and its connection is closed", async () => {
    const target = makeTarget();
    const s = await target.start({ MESSAGING_REQUEST_BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS) });
    await warmUp(s);
    const client = await rawClient(s.port);
    const startedAt = Date.now();
    client.write(`POST /api/messages/sms HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: ${SEND.length}\r\n\r\n`);
    let sent = 0;
    const trickle = setInterval(() => {
      if (sent < SEND.length && !client.isClosed()) client.write(SEND[sent++]!);
    }, 250);
    try {
      const answer = await nthResponse(client, 1, BODY_TIMEOUT_MS + 5000);
      const elapsed = Date.now() - startedAt;
      expectEnvelope(answer, 408, "request_timeout");
      expect(answer.headers.connection).toBe("close");
      expect(elapsed).toBeGreaterThanOrEqual(BODY_TIMEOUT_MS - 100);
      expect(elapsed).toBeLessThan(BODY_TIMEOUT_MS + 2500);
      expect(sent).toBeLessThan(SEND.length); // it was still arriving
      // Bun closes the socket on its own timer, which ticks every 4 s; the client keeps trickling meanwhile.
      await Promise.race([client.closed, Bun.sleep(9000)]);
      expect(client.isClosed()).toBe(true);
    } finally {
      clearInterval(trickle);
    }
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect(await s.stop()).toBe(0);
  }, 60_000);
});
