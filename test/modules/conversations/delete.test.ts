import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, request, type TestApp } from "../../helpers/app.ts";
import { addAttempt, expectCountersExact, rowsOfMessages } from "../../helpers/counters.ts";
import { concurrently, countRows, get, phone, post, smsSend, smsWebhook, UNLIMITED } from "../../helpers/messaging.ts";

describe.each(["postgres", "embedded"] as const)("DELETE /api/conversations/{id} on %s", (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await buildTestApp({ database, config: UNLIMITED });
  }, 60_000);
  afterAll(() => t.close());

  const total = async () => (await get(t.app, "/api/conversations")).json.meta.total as number;

  test("removes the conversation, its messages, their attempts and jobs, and takes it off the total", async () => {
    const [a, b] = [phone(), phone()];
    const out = await post(t.app, "/api/messages/sms", smsSend({ from: a, to: b }));
    const keyed = await post(t.app, "/api/messages/sms", smsSend({ from: a, to: b }), { "idempotency-key": crypto.randomUUID() });
    const reply = await post(t.app, "/api/webhooks/sms", smsWebhook({ from: b, to: a }));
    const other = await post(t.app, "/api/messages/sms", smsSend());
    const ids = [out.json.id, keyed.json.id, reply.json.id];
    await addAttempt(t.database, out.json.id);
    const conversation = out.json.conversation_id as string;
    const before = await total();

    const res = await request(t.app, "DELETE", `/api/conversations/${conversation}`);
    expect(res.status).toBe(204);
    expect(res.text).toBe("");

    expect(await countRows(t.database, "conversations", "id = $1", [conversation])).toBe(0);
    expect(await countRows(t.database, "messages", "conversation_id = $1", [conversation])).toBe(0);
    expect(await rowsOfMessages(t.database, "delivery_attempts", ids)).toBe(0);
    expect(await rowsOfMessages(t.database, "delivery_jobs", ids)).toBe(0);
    expect((await get(t.app, `/api/conversations/${conversation}/messages`)).status).toBe(404);
    expect((await get(t.app, `/api/messages/${out.json.id}`)).status).toBe(404);
    expect(await total()).toBe(before - 1);
    // Everything else stays.
    expect((await get(t.app, `/api/messages/${other.json.id}`)).status).toBe(200);
    await expectCountersExact(t.database);
  });

  test("a message after the delete starts the pair's conversation anew, with a new id", async () => {
    const body = smsSend();
    const first = await post(t.app, "/api/messages/sms", body);
    expect((await request(t.app, "DELETE", `/api/conversations/${first.json.conversation_id}`)).status).toBe(204);
    const again = await post(t.app, "/api/messages/sms", body);
    expect(again.status).toBe(202);
    expect(again.json.conversation_id).not.toBe(first.json.conversation_id);
    const page = await get(t.app, `/api/conversations/${again.json.conversation_id}/messages`);
    expect(page.json.meta.total).toBe(1);
    await expectCountersExact(t.database);
  });

  test.each(["999999999", "abc", "0", "-1", "01"])("id %p names no conversation: 404 not_found envelope, nothing deleted", async (id) => {
    const before = await countRows(t.database, "conversations");
    const res = await request(t.app, "DELETE", `/api/conversations/${id}`);
    expect(res.status).toBe(404);
    expect(res.json).toMatchObject({ code: "not_found", message: `conversation ${id} does not exist` });
    expect(res.json.request_id).toBeString();
    expect(await countRows(t.database, "conversations")).toBe(before);
  });

  test("the route is documented in the OpenAPI schema with its 204 and 404", async () => {
    const doc = (await get(t.app, "/openapi.json")).json;
    const op = doc.paths["/api/conversations/{id}"].delete;
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["204", "404", "401", "403"]));
    expect(op.summary).toContain("admin scope");
  });

  test("GET on a conversation's own path is 405, naming DELETE in Allow", async () => {
    const res = await get(t.app, "/api/conversations/1");
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toContain("DELETE");
  });

  test("a delete PostgreSQL ends as a deadlock victim runs again and succeeds", async () => {
    const sent = await post(t.app, "/api/messages/sms", smsSend());
    // The first delete of this conversation is refused with SQLSTATE 40P01; a sequence counts across rollbacks.
    await t.database.sql.query("CREATE SEQUENCE deadlock_once");
    await t.database.sql.query(`
      CREATE FUNCTION deadlock_once() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF OLD.id = ${Number(sent.json.conversation_id)} AND nextval('deadlock_once') = 1 THEN
          RAISE EXCEPTION 'deadlock detected (test)' USING ERRCODE = '40P01';
        END IF;
        RETURN OLD;
      END $$`);
    await t.database.sql.query("CREATE TRIGGER deadlock_once BEFORE DELETE ON conversations FOR EACH ROW EXECUTE FUNCTION deadlock_once()");
    try {
      expect((await request(t.app, "DELETE", `/api/conversations/${sent.json.conversation_id}`)).status).toBe(204);
      const [row] = await t.database.sql.query<{ n: string }>("SELECT last_value::text AS n FROM deadlock_once");
      expect(row!.n).toBe("2");
      expect(await countRows(t.database, "conversations", "id = $1", [sent.json.conversation_id])).toBe(0);
      await expectCountersExact(t.database);
    } finally {
      await t.database.sql.query("DROP TRIGGER deadlock_once ON conversations");
    }
  });

  test("deleting twice: the second is 404", async () => {
    const sent = await post(t.app, "/api/messages/sms", smsSend());
    const path = `/api/conversations/${sent.json.conversation_id}`;
    expect((await request(t.app, "DELETE", path)).status).toBe(204);
    expect((await request(t.app, "DELETE", path)).status).toBe(404);
    await expectCountersExact(t.database);
  });

  test("sends to the same pair racing the delete all land, and no message is left without its conversation", async () => {
    const [a, b] = [phone(), phone()];
    const first = await post(t.app, "/api/messages/sms", smsSend({ from: a, to: b }));
    const [sends, deleted] = await Promise.all([
      concurrently(40, (i) =>
        i % 2 === 0
          ? post(t.app, "/api/messages/sms", smsSend({ from: a, to: b }))
          : post(t.app, "/api/messages/sms", smsSend({ from: b, to: a }), { "idempotency-key": crypto.randomUUID() }),
      ),
      request(t.app, "DELETE", `/api/conversations/${first.json.conversation_id}`),
    ]);
    expect(deleted.status).toBe(204);
    expect(sends.map((s) => s.status)).toEqual(sends.map(() => 202));
    const orphans = await countRows(t.database, "messages", "NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = messages.conversation_id)");
    expect(orphans).toBe(0);
    // What survived the delete is in the pair's one conversation, and its count is exact.
    const key = `sms:${[a, b].sort().join("<->")}`;
    expect(await countRows(t.database, "conversations", "key = $1", [key])).toBeLessThanOrEqual(1);
    await expectCountersExact(t.database);
  });
});
