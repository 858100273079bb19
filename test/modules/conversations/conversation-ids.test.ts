import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, request, type TestApp } from "../../helpers/app.ts";
import { smsSend, UNLIMITED } from "../../helpers/messaging.ts";

let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp({ config: UNLIMITED });
});
afterAll(() => t.close());

const send = (from: string, to: string) => request(t.app, "POST", "/api/messages/sms", { body: smsSend({ from, to }) });

describe("conversation ids", () => {
  test("messages to an existing pair, one by one or in concurrent batches, do not use up conversation ids", async () => {
    expect((await send("+12015550101", "+12015550102")).json.conversation_id).toBe("1");
    for (let i = 0; i < 5; i++) expect((await send("+12015550102", "+12015550101")).json.conversation_id).toBe("1");
    const concurrent = await Promise.all(Array.from({ length: 40 }, () => send("+12015550101", "+12015550102")));
    expect(new Set(concurrent.map((r) => r.json.conversation_id))).toEqual(new Set(["1"]));

    expect((await send("+12015550201", "+12015550202")).json.conversation_id).toBe("2");
    const [row] = await t.database.sql.query<{ message_count: number }>("SELECT message_count FROM conversations WHERE id = 1");
    expect(row!.message_count).toBe(46);
  });
});
