/**
 * The operator's side of API keys, with the compiled binary: the first `serve` makes a key and shows it once
 * (on stderr, never in the log), `keys create | list | revoke` on PostgreSQL, and `MESSAGING_AUTH=off` warned.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, killAll, runBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate, createTestDatabase, type TestDatabase } from "../helpers/database.ts";

const KEY = /msg_[a-z2-7]{10}_[A-Za-z0-9_-]{43}/g;
const running: ServeProcess[] = [];
const scratch: string[] = [];
let pg: TestDatabase;

beforeAll(async () => {
  await ensureBinary();
  pg = await createTestDatabase();
  const migrated = await runBinary(["migrate", "up"], { env: { DATABASE_URL: pg.url } });
  expect(migrated.exitCode).toBe(0);
}, 180_000);
afterAll(async () => {
  killAll(running);
  await pg?.drop();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

const get = (url: string, key?: string) => fetch(url, key ? { headers: { authorization: `Bearer ${key}` } } : {});

describe("the first serve", () => {
  // Each on a data directory of its own, side by side: most of their time is the binaries' first starts.
  test.concurrent("with auth on by default and no key, serve makes one, prints it once on stderr and never logs it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "msg-keys-"));
    scratch.push(dir);
    // A database as initdb leaves it: no migration, no key (the run's template, copied instead of initdb again).
    await copyEmbeddedTemplate(join(dir, "messaging-data"));
    const first = await startServe({ cwd: dir, unset: ["MESSAGING_AUTH"] });
    running.push(first);
    const printed = first.stderr().match(KEY) ?? [];
    expect(printed).toHaveLength(1);
    expect(first.stderr()).toContain("messaging keys create --name NAME");
    const key = printed[0]!;
    expect((await get(`${first.url}/api/conversations`)).status).toBe(401);
    expect((await get(`${first.url}/api/conversations`, key)).status).toBe(200);
    expect(await first.stop()).toBe(0);
    expect(first.stdout()).not.toContain(key);
    expect(first.stdout()).not.toContain(key.slice("msg_".length + 11));
    // A second start finds the key and prints nothing.
    const second = await startServe({ cwd: dir, unset: ["MESSAGING_AUTH"] });
    running.push(second);
    expect(second.stderr().match(KEY)).toBeNull();
    expect((await get(`${second.url}/api/conversations`, key)).status).toBe(200);
    expect(await second.stop()).toBe(0);
  }, 60_000);

  test.concurrent("MESSAGING_AUTH=off logs a warning at start and makes no key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "msg-keys-"));
    scratch.push(dir);
    await copyEmbeddedTemplate(join(dir, "messaging-data"));
    const s = await startServe({ cwd: dir, env: { MESSAGING_AUTH: "off" } });
    running.push(s);
    expect(s.stdout()).toContain("MESSAGING_AUTH=off");
    expect(s.stderr().match(KEY)).toBeNull();
    expect((await get(`${s.url}/api/conversations`)).status).toBe(200);
    expect(await s.stop()).toBe(0);
  }, 60_000);
});

describe("messaging keys on PostgreSQL", () => {
  const env = () => ({ DATABASE_URL: pg.url });

  // These two wait out the instances' key cache (5 s), each with a key and a serve of its own: side by side.
  test.concurrent("create --json prints the key once with its id, name, prefix and scopes; list never shows it; revoke ends it", async () => {
    const created = await runBinary(["keys", "create", "--name", "ci", "--scope", "send,read", "--expires", "90d", "--json"], { env: env() });
    expect(created.exitCode).toBe(0);
    const made = JSON.parse(created.stdout) as { id: string; name: string; prefix: string; scopes: string[]; key: string };
    expect(Object.keys(made).sort()).toEqual(["id", "key", "name", "prefix", "rate_limit_per_min", "scopes"]);
    expect(made).toMatchObject({ name: "ci", scopes: ["send", "read"] });
    expect(made.key.startsWith(`msg_${made.prefix}_`)).toBe(true);

    const listed = await runBinary(["keys", "list", "--json"], { env: env() });
    expect(listed.exitCode).toBe(0);
    expect(listed.stdout).not.toContain(made.key.slice("msg_".length + 11));
    const rows = JSON.parse(listed.stdout) as { id: string; expires_at: string | null; revoked_at: string | null; last_used_at: string | null }[];
    const row = rows.find((r) => r.id === made.id)!;
    expect(row.revoked_at).toBeNull();
    expect(new Date(row.expires_at!).getTime()).toBeGreaterThan(Date.now() + 89 * 86_400_000);

    const s = await startServe({ env: { DATABASE_URL: pg.url, MESSAGING_AUTH: "on" } });
    running.push(s);
    expect((await get(`${s.url}/api/conversations`, made.key)).status).toBe(200);
    const revoked = await runBinary(["keys", "revoke", made.id], { env: env() });
    expect(revoked.exitCode).toBe(0);
    // Every instance refuses it within its cache time (5 s).
    const deadline = Date.now() + 8000;
    while ((await get(`${s.url}/api/conversations`, made.key)).status !== 401) {
      expect(Date.now()).toBeLessThan(deadline);
      await Bun.sleep(200);
    }
    expect(await s.stop()).toBe(0);
    const after = JSON.parse((await runBinary(["keys", "list", "--json"], { env: env() })).stdout) as typeof rows;
    expect(after.find((r) => r.id === made.id)!.revoked_at).not.toBeNull();
    expect(after.find((r) => r.id === made.id)!.last_used_at).not.toBeNull();
  }, 60_000);

  test.concurrent("--rate-limit sets a key's own limit, list shows it, update changes it or returns it to the default", async () => {
    const created = await runBinary(["keys", "create", "--name", "busy", "--rate-limit", "600/min", "--json"], { env: env() });
    expect(created.exitCode).toBe(0);
    const made = JSON.parse(created.stdout) as { id: string; prefix: string; rate_limit_per_min: number | null; key: string };
    expect(made.rate_limit_per_min).toBe(600);
    const rateOf = async () => {
      const rows = JSON.parse((await runBinary(["keys", "list", "--json"], { env: env() })).stdout) as { id: string; rate_limit_per_min: number | null }[];
      return rows.find((r) => r.id === made.id)!.rate_limit_per_min;
    };
    expect(await rateOf()).toBe(600);
    const plain = await runBinary(["keys", "list"], { env: env() });
    expect(plain.stdout.split("\n").find((l) => l.startsWith(made.id))).toContain("rate 600/min");

    const s = await startServe({ env: { DATABASE_URL: pg.url, MESSAGING_AUTH: "on" } });
    running.push(s);
    const first = await get(`${s.url}/api/conversations`, made.key);
    expect(first.status).toBe(200);
    expect(first.headers.get("ratelimit-limit")).toBe("600");

    const updated = await runBinary(["keys", "update", made.prefix, "--rate-limit", "10/s"], { env: env() });
    expect(updated.exitCode).toBe(0);
    expect(updated.stdout).toContain(`updated ${made.id}`);
    expect(await rateOf()).toBe(600);
    // 10/s is 600/min: a different spelling of the same rate; then a real change, seen by the running instance.
    expect((await runBinary(["keys", "update", made.id, "--rate-limit", "1200"], { env: env() })).exitCode).toBe(0);
    expect(await rateOf()).toBe(1200);
    const deadline = Date.now() + 8000;
    while ((await get(`${s.url}/api/conversations`, made.key)).headers.get("ratelimit-limit") !== "1200") {
      expect(Date.now()).toBeLessThan(deadline);
      await Bun.sleep(200);
    }
    expect((await runBinary(["keys", "update", made.id, "--rate-limit", "default"], { env: env() })).exitCode).toBe(0);
    expect(await rateOf()).toBeNull();
    const other = await get(`${s.url}/api/conversations`, made.key);
    expect(other.status).toBe(200);
    expect(await s.stop()).toBe(0);

    const missing = await runBinary(["keys", "update", "zzzzzzzzzz", "--rate-limit", "5/min"], { env: env() });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain("no API key");
  }, 60_000);

  test("create --scope inbound makes a provider bridge's key: it posts webhooks and nothing else; a forged STOP without it is 401", async () => {
    const created = await runBinary(["keys", "create", "--name", "bridge", "--scope", "inbound", "--json"], { env: env() });
    expect(created.exitCode).toBe(0);
    const bridge = JSON.parse(created.stdout) as { key: string; scopes: string[] };
    expect(bridge.scopes).toEqual(["inbound"]);
    const s = await startServe({ env: { DATABASE_URL: pg.url, MESSAGING_AUTH: "on" } });
    running.push(s);
    const post = (path: string, body: unknown, key?: string) =>
      fetch(`${s.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) }, body: JSON.stringify(body) });
    const stop = { from: "+12015550177", to: "+12015550178", type: "sms", messaging_provider_id: `forged-${crypto.randomUUID()}`, body: "STOP", attachments: null, timestamp: "2024-11-01T14:00:00Z" };
    expect((await post("/api/webhooks/sms", stop)).status).toBe(401);
    expect((await post("/api/webhooks/sms", { ...stop, body: "hello", messaging_provider_id: `real-${crypto.randomUUID()}` }, bridge.key)).status).toBe(202);
    expect((await post("/api/messages/sms", { from: "+12015550178", to: "+12015550177", type: "sms", body: "hi", attachments: null, timestamp: "2024-11-01T14:00:00Z" }, bridge.key)).status).toBe(403);
    expect(await s.stop()).toBe(0);
    const checked = await runBinary(["check"], { env: env() });
    expect(checked.stdout).toMatch(/^✓ inbound-webhooks: \/api\/webhooks\/sms and \/api\/webhooks\/email are closed except to API keys with the inbound scope/m);
  }, 60_000);

  test.each([
    [["keys", "create", "--name", "x", "--rate-limit", "fast"], "--rate-limit"],
    [["keys", "create", "--name", "x", "--rate-limit", "0/min"], "--rate-limit"],
    [["keys", "update", "abc"], "--rate-limit"],
    [["keys", "create", "--name", "x", "--scope", "send,superuser"], "--scope"],
    [["keys", "create", "--name", "x", "--expires", "forever"], "--expires"],
    [["keys", "create"], "--name"],
  ])("%p is refused with exit 2 naming %s", async (args, named) => {
    const r = await runBinary(args, { env: env() });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(named);
  });

  test("revoking an unknown key exits 1", async () => {
    const r = await runBinary(["keys", "revoke", "zzzzzzzzzz"], { env: env() });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("no API key");
  });
});
