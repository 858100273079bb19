// End to end: `messaging webhooks sign` of the compiled binary signs a body that a running `messaging serve`
// with MESSAGING_WEBHOOK_SECRETS then accepts; and what serve and check say when no secret is set.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runChecks } from "../../src/diagnostics/check.ts";
import { signWebhook } from "../../src/security/webhook-signature.ts";
import { testConfig } from "../helpers/app.ts";
import { ensureBinary, killAll, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { smsWebhook } from "../helpers/messaging.ts";

const SECRET = "whsec-binary-test-8c1d44e0";
const WARNING = "MESSAGING_WEBHOOK_SECRETS is not set";

let dir: string;
let secretFile: string;
let pg: TestDatabase;
const running: ServeProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "msg-test-sign-"));
  secretFile = join(dir, "webhook.secret");
  // As `echo secret > file` writes it: the trailing newline is not part of the secret.
  writeFileSync(secretFile, `${SECRET}\n`);
  pg = await createTestDatabase();
  await ensureBinary();
}, 180_000);
afterAll(async () => {
  killAll(running);
  await pg.drop();
  rmSync(dir, { recursive: true, force: true });
});

const sign = (body: Uint8Array, extra: string[] = []) =>
  runBinary(["webhooks", "sign", "--secret-file", secretFile, ...extra], { cwd: dir, stdin: body });

async function serve(env: Record<string, string>): Promise<ServeProcess> {
  const s = await startServe({ cwd: dir, env: { DATABASE_URL: pg.url, ...env }, args: ["--migrate"] });
  running.push(s);
  return s;
}

const postRaw = (s: ServeProcess, body: Uint8Array, headers: Record<string, string>) =>
  fetch(`${s.url}/api/webhooks/sms`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });

describe("messaging webhooks sign", () => {
  test("prints the header value for the bytes on stdin, the secret read without its trailing newline", async () => {
    const body = new TextEncoder().encode('{"any":"bytes"}\n');
    const r = await sign(body, ["--timestamp", "1767000000"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`${signWebhook(SECRET, body, 1767000000)}\n`);
  });

  test("without --timestamp it signs at the current time", async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await sign(new TextEncoder().encode("{}"));
    const t = Number(/^t=(\d+),v1=[0-9a-f]{64}\n$/.exec(r.stdout)?.[1]);
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));
  });

  test("a missing secret file or a timestamp that is not unix seconds is a usage error (exit 2)", async () => {
    const missing = await runBinary(["webhooks", "sign", "--secret-file", join(dir, "absent")], { cwd: dir, stdin: new Uint8Array() });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain("cannot read the secret file");
    const badTime = await sign(new Uint8Array(), ["--timestamp", "yesterday"]);
    expect(badTime.exitCode).toBe(2);
    expect(badTime.stdout).toBe("");
  });

  test("--help of the command documents the header format and an example", async () => {
    const r = await runBinary(["webhooks", "sign", "--help"], { cwd: dir });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("--secret-file <path>");
    expect(r.stdout).toContain("X-Messaging-Signature");
    expect((await runBinary(["--help"], { cwd: dir })).stdout).toMatch(/^\s+webhooks\b/m);
  });
});

describe("serve with MESSAGING_WEBHOOK_SECRETS", () => {
  test("a webhook signed by the binary is accepted; the same bytes unsigned are 401; no start-up warning", async () => {
    const s = await serve({ MESSAGING_WEBHOOK_SECRETS: `old-secret-aaaa,${SECRET}` });
    const body = new TextEncoder().encode(JSON.stringify(smsWebhook()));
    const signed = await sign(body);
    expect(signed.exitCode).toBe(0);
    const accepted = await postRaw(s, body, { "x-messaging-signature": signed.stdout.trim() });
    expect(accepted.status).toBe(202);
    expect(await accepted.json()).toMatchObject({ status: "accepted" });
    const unsigned = await postRaw(s, new TextEncoder().encode(JSON.stringify(smsWebhook())), {});
    expect(unsigned.status).toBe(401);
    expect(await s.stop()).toBe(0);
    expect(s.stdout()).not.toContain(WARNING);
    expect(s.stdout()).not.toContain(SECRET);
  });
});

describe("without secrets", () => {
  test("serve accepts unsigned webhooks and its start-up log warns once", async () => {
    const s = await serve({});
    const res = await postRaw(s, new TextEncoder().encode(JSON.stringify(smsWebhook())), {});
    expect(res.status).toBe(202);
    expect(await s.stop()).toBe(0);
    const warnings = s.stdout().split("\n").filter((line) => line.includes(WARNING));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0]!)).toMatchObject({ level: "warn" });
  });

  test("check warns, and does not once a secret is set", async () => {
    const dataDir = join(dir, "no-database-here");
    const open = await runChecks(testConfig({ dataDir }));
    expect(open).toContainEqual({ check: "inbound-webhooks", status: "warn", message: expect.stringContaining(WARNING) });
    const signed = await runChecks(testConfig({ dataDir, webhookSecrets: [SECRET] }));
    expect(signed.find((c) => c.check === "inbound-webhooks")?.status).toBe("ok");
    expect(JSON.stringify(signed)).not.toContain(SECRET);
  });
});
