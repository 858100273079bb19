// The selftest's scheduling cases when the run is paced by the target's per-client limit (auth off, default limits):
// each request may wait its turn, two lanes of cases share the bucket, and a cancel that waited past send_at would
// meet a message already sent (409). The case schedules far enough ahead for its own requests to wait their turn.
import { afterAll, describe, expect, test } from "bun:test";
import type { CaseContext } from "../../cli/selftest/case.ts";
import { schedulingCases } from "../../cli/selftest/cases/scheduling.ts";
import { Client, RateBudget } from "../../cli/selftest/client.ts";
import { RunData } from "../../cli/selftest/run-data.ts";

const servers: { stop(force?: boolean): unknown }[] = [];
afterAll(() => {
  for (const s of servers) s.stop(true);
});

/** An answer carrying the per-client bucket's headers, as the target sends them. */
const bucket = (limit: number, remaining: number) => ({
  status: 200,
  headers: new Headers({ "ratelimit-limit": String(limit), "ratelimit-remaining": String(remaining) }),
});

describe("RateBudget.waitBoundMs", () => {
  test("nothing to wait for before the bucket is seen, nor while it holds the requests of both lanes and the reserve", () => {
    const budget = new RateBudget();
    expect(budget.waitBoundMs(4)).toBe(0);
    budget.observe(bucket(120, 120));
    expect(budget.waitBoundMs(4)).toBe(0);
  });

  test("an empty bucket at 120 a minute: 4 requests of the case, 4 of the other lane and the reserve of 2 take 5 s to refill", () => {
    const budget = new RateBudget();
    budget.observe(bucket(120, 0));
    expect(budget.waitBoundMs(4)).toBeGreaterThan(4900);
    expect(budget.waitBoundMs(4)).toBeLessThanOrEqual(5000);
  });

  test("a 429 teaches nothing (its headers may be another bucket's)", () => {
    const budget = new RateBudget();
    budget.observe({ ...bucket(120, 0), status: 429 });
    expect(budget.waitBoundMs(4)).toBe(0);
  });
});

describe("scheduling.cancel on a paced run", () => {
  test("schedules its message far enough ahead for its requests before the cancel to wait their turn, not just 2 s", async () => {
    // A target that records the send_at asked for and then says it does not schedule, so the case stops there.
    let asked: { at: number; sendAt: number } | undefined;
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const url = new URL(req.url);
        if (req.method === "POST" && url.pathname === "/api/messages/sms") {
          const body = (await req.json()) as { send_at: string };
          asked = { at: Date.now(), sendAt: Date.parse(body.send_at) };
          return Response.json({ status: "accepted", id: "7", conversation_id: "3" }, { status: 202 });
        }
        return Response.json({ id: "7", status: "queued", send_at: null, attempts: [] });
      },
    });
    servers.push(server);
    const budget = new RateBudget();
    // Seen last: 4 tokens left of 6 a minute, one every 10 s. The send and the look at it go at once (the
    // reserve of 2 kept); the case's next two requests and the other lane's four wait on the refill, about 60 s.
    budget.observe(bucket(6, 4));
    const http = new Client({ target: `http://127.0.0.1:${server.port}` }, budget);
    const cancel = schedulingCases.find((c) => c.id === "scheduling.cancel")!;
    const notes: string[] = [];
    const ctx = {
      http,
      data: new RunData(),
      target: { url: `http://127.0.0.1:${server.port}`, features: new Map(), anonymousAnswer: undefined as never },
      skip: (reason: string): never => {
        throw Object.assign(new Error(reason), { skipped: true });
      },
      note: (line: string) => notes.push(line),
      defer: () => {},
    } satisfies CaseContext;
    await expect(cancel.run(ctx)).rejects.toThrow("the target does not schedule");
    expect(asked).toBeDefined();
    expect(asked!.sendAt - asked!.at).toBeGreaterThanOrEqual(50_000);
    expect(notes.join("\n")).toContain("paced by the target's rate limit");
  });
});
