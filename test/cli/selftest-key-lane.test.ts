// With --token, the selftest's requests are charged to the key's bucket, and what it knows of "the per-client
// limit" must be that bucket: errors.rate-limited stops (skipped, as it says) once the key's bucket is empty,
// rather than reading the anonymous bucket it never sees and sending on, paced by the key's refill.
import { afterAll, expect, test } from "bun:test";
import { runSelftest } from "../../cli/selftest/run.ts";

const TOKEN = "msk_test_key_lane";
let remaining = 12;
const target = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const url = new URL(req.url);
    const keyed = req.headers.get("authorization") === `Bearer ${TOKEN}`;
    if (url.pathname === "/healthz") return Response.json({ status: "ok" });
    if (url.pathname === "/openapi.json") return Response.json({ openapi: "3.1.0", paths: { "/api/messages/sms": {} } });
    if (!keyed) return Response.json({ error: { code: "unauthorized", message: "an API key is required" } }, { status: 401, headers: { "www-authenticate": "Bearer" } });
    // The key's bucket: 60 a minute, 12 left at the start, spent by every keyed request (the probe's, then the
    // case's sends) and refilled by none; the sender's limit is never reached from this one client.
    const headers = { "ratelimit-limit": "60", "ratelimit-remaining": String(Math.max(0, remaining--)), "ratelimit-reset": "10" };
    if (url.pathname === "/api/messages/sms" && req.method === "POST") {
      return Response.json({ id: "1", status: "queued", conversation_id: "1" }, { status: 202, headers });
    }
    if (url.pathname === "/api/conversations") return Response.json({ items: [], total: 0, page: 1, page_size: 1 }, { headers });
    return Response.json({ error: { code: "not_found", message: "no such route" } }, { status: 404, headers });
  },
});
afterAll(() => target.stop(true));

test("with --token, the rate-limit case learns the key's bucket ran out and skips, naming that bucket's limit", async () => {
  let output = "";
  const outcome = await runSelftest({
    target: `http://127.0.0.1:${target.port}`,
    token: TOKEN,
    only: ["errors.rate-limited"],
    skip: [],
    timeoutSecs: 60,
    tty: false,
    write: (text) => (output += text),
  });
  expect(outcome.kind).toBe("ran");
  if (outcome.kind !== "ran") return;
  expect(outcome.summary).toMatchObject({ passed: 0, failed: 0, skipped: 1 });
  expect(output).toContain("the per-client limit (60 a minute) ran out");
}, 20_000);
