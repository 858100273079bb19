/**
 * The embedded database on a file system that fills up, through the compiled binary: sends are answered 202 or
 * 503 with Retry-After (never 500), /readyz is 503 "storage full", the metric and one warning say so, every 202
 * is still there afterwards, and once space returns the service is ready and accepts sends without a restart.
 * The file system is a 96 MB tmpfs (the tests run as root); where `mount` is refused the test is skipped with
 * the reason printed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate } from "../helpers/database.ts";
import { metricValue, smsSend } from "../helpers/messaging.ts";

const SENDS = 300;
let root: string;
let mount: string | undefined;
let server: ServeProcess | undefined;
let skipReason: string | undefined;

beforeAll(async () => {
  await ensureBinary();
  root = mkdtempSync(join(tmpdir(), "msg-full-"));
  const at = join(root, "fs");
  mkdirSync(at);
  const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", at], { stderr: "pipe" });
  if (mounted.exitCode !== 0) {
    skipReason = `cannot mount a tmpfs here (${mounted.stderr.toString().trim() || `exit ${mounted.exitCode}`})`;
    console.log(`skipped: ${skipReason}`);
    return;
  }
  mount = at;
  const dataDir = join(at, "data");
  await copyEmbeddedTemplate(dataDir);
  server = await startServe({
    cwd: root,
    env: { MESSAGING_DATA_DIR: dataDir, API_RATE_LIMIT_PER_IP_PER_MIN: "1000000", API_RATE_LIMIT_PER_SENDER_PER_MIN: "1000000", MESSAGING_DELIVERY_WORKERS: "0" },
  });
}, 180_000);

afterAll(async () => {
  await server?.stop().catch(() => {});
  if (mount) Bun.spawnSync(["umount", "-l", mount]);
  rmSync(root, { recursive: true, force: true });
});

/** Leaves `bytes` free on the mount by filling the rest with one file. */
function fillLeaving(bytes: number): string {
  const filler = join(mount!, "filler");
  const free = (() => {
    const s = statfsSync(mount!);
    return s.bavail * s.bsize;
  })();
  expect(Bun.spawnSync(["fallocate", "-l", String(Math.max(0, free - bytes)), filler]).exitCode).toBe(0);
  return filler;
}

async function send(url: string): Promise<{ status: number; retryAfter: string | null; id?: string; code?: string }> {
  const res = await fetch(`${url}/api/messages/sms`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(smsSend({ body: `${"full disk ".repeat(150)}${crypto.randomUUID()}` })),
  });
  const body = (await res.json()) as { id?: string; code?: string };
  return { status: res.status, retryAfter: res.headers.get("retry-after"), id: body.id, code: body.code };
}

describe("the embedded database on a file system that fills up", () => {
  test(`${SENDS} sends: 202 or 503 with Retry-After, never 500; /readyz storage full; nothing acknowledged lost; recovery without a restart`, async () => {
    if (skipReason) return;
    const s = server!;
    const filler = fillLeaving(256 * 1024);
    const answers: Awaited<ReturnType<typeof send>>[] = [];
    for (let i = 0; i < SENDS; i += 10) answers.push(...(await Promise.all(Array.from({ length: 10 }, () => send(s.url)))));
    const byStatus: Record<string, number> = {};
    for (const a of answers) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
    console.log(`full-disk run, ${SENDS} sends, answers by status: ${JSON.stringify(byStatus)}`);
    expect(Object.keys(byStatus).sort()).toEqual(["202", "503"]);
    for (const a of answers.filter((x) => x.status === 503)) {
      expect(a.code).toBe("service_unavailable");
      expect(a.retryAfter).toBe("30");
    }
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { message: string }).message).toBe("not ready: storage full");
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metricValue(metrics, "messaging_storage_full")).toBe(1);
    expect(metricValue(metrics, "messaging_storage_full_refusals_total")).toBe(byStatus["503"]!);

    rmSync(filler);
    const restored = Date.now();
    while ((await fetch(`${s.url}/readyz`)).status !== 200) {
      expect(Date.now() - restored).toBeLessThan(5000);
      await Bun.sleep(100);
    }
    expect((await send(s.url)).status).toBe(202);
    // Every acknowledged send is stored.
    for (const a of answers.filter((x) => x.status === 202)) {
      expect((await fetch(`${s.url}/api/messages/${a.id}`)).status).toBe(200);
    }
    expect(await s.stop()).toBe(0);
    const lines = s.stdout().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => String(l.msg).startsWith("the database is out of storage space"))).toHaveLength(1);
    expect(lines.filter((l) => String(l.msg).startsWith("the database has storage space again"))).toHaveLength(1);
    expect(lines.filter((l) => l.level === "error")).toEqual([]);
  }, 120_000);
});
