import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, request, type TestApp } from "../../helpers/app.ts";
import { smsSend, UNLIMITED } from "../../helpers/messaging.ts";

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: UNLIMITED });
});
afterAll(() => t.close());

describe("coalesced list reads", () => {
  test("identical concurrent list requests all answer the same page", async () => {
    await request(t.app, "POST", "/api/messages/sms", { body: smsSend() });
    const pages = await Promise.all(Array.from({ length: 20 }, () => request(t.app, "GET", "/api/conversations")));
    expect(pages.every((p) => p.status === 200)).toBe(true);
    expect(new Set(pages.map((p) => p.text)).size).toBe(1);
  });

  test("a write acknowledged before a list request is always in its answer, even while identical lists are in flight", async () => {
    const before = (await request(t.app, "GET", "/api/conversations")).json.meta.total as number;
    for (let round = 0; round < 5; round++) {
      const inFlight = Array.from({ length: 10 }, () => request(t.app, "GET", "/api/conversations"));
      const send = smsSend();
      expect((await request(t.app, "POST", "/api/messages/sms", { body: send })).status).toBe(202);
      const after = await request(t.app, "GET", "/api/conversations");
      expect(after.json.meta.total).toBe(before + round + 1);
      // Same timestamps everywhere, so the newest conversation (highest id) comes first.
      expect(after.json.items[0].key).toContain(String(send.from));
      await Promise.all(inFlight);
    }
  });

  test("the same holds for a conversation's messages", async () => {
    const first = await request(t.app, "POST", "/api/messages/sms", { body: smsSend({ from: "+12015559001", to: "+12015559002", body: "one" }) });
    const id = first.json.conversation_id as string;
    const inFlight = Array.from({ length: 10 }, () => request(t.app, "GET", `/api/conversations/${id}/messages`));
    await request(t.app, "POST", "/api/messages/sms", { body: smsSend({ from: "+12015559001", to: "+12015559002", body: "two" }) });
    const after = await request(t.app, "GET", `/api/conversations/${id}/messages`);
    expect(after.json.items.map((m: { body: string }) => m.body)).toEqual(["one", "two"]);
    expect(after.json.meta.total).toBe(2);
    await Promise.all(inFlight);
  });
});
