import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildTestApp, type TestApp, type TestResponse } from "../../helpers/app.ts";
import { get, post, smsSend, UNLIMITED } from "../../helpers/messaging.ts";

/*
 * Keyset pagination (`cursor`, `meta.next_cursor`) on both lists and both databases. The seeds are SQL so
 * that timestamps can differ by one microsecond and tie exactly (ids then decide), and ids are shuffled
 * against time, so a cursor that lost precision or ignored the id would skip or repeat rows.
 */
const CONVERSATIONS = 121;
const MESSAGES = 131;
const A = "+17770000001";
const B = "+17770000002";

/** Rows i = 0..n-1 at BASE + ⌊i/4⌋ ms + ⌊(i mod 4)/2⌋ µs: pairs tie exactly, fours share a millisecond. */
const spreadAt = (i: string) => `'2030-01-01T00:00:00Z'::timestamptz + (${i} / 4) * interval '1 millisecond' + ((${i} % 4) / 2) * interval '1 microsecond'`;
const party = (prefix: string, i: string) => `'+1${prefix}' || lpad(${i}::text, 7, '0')`;

async function seed(t: TestApp): Promise<string> {
  await t.database.sql.query(
    `INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
     SELECT 'sms', ${party("555", "i")}, ${party("666", "i")}, 'sms:' || ${party("555", "i")} || '<->' || ${party("666", "i")}, 1, ${spreadAt("i")}
       FROM generate_series(0, $1 - 1) i ORDER BY md5(i::text)`,
    [CONVERSATIONS],
  );
  const [row] = await t.database.sql.query<{ id: string }>(
    `INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
     VALUES ('sms', $1, $2, 'sms:' || $1 || '<->' || $2, $3, '2020-01-01T00:00:00Z') RETURNING id::text`,
    [A, B, MESSAGES],
  );
  await t.database.sql.query(
    `INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp)
     SELECT $1, 'outbound', 'sms', 'sms', $2, $3, 'seed ' || i, 'queued', ${spreadAt("i")}
       FROM generate_series(0, $4 - 1) i ORDER BY md5(i::text)`,
    [row!.id, A, B, MESSAGES],
  );
  return row!.id;
}

const ids = (res: TestResponse) => (res.json.items as { id: string }[]).map((item) => item.id);

/** Follows next_cursor from the first page to the last; `between` runs after each page. */
async function walkCursor(t: TestApp, path: string, pageSize: number, between: () => Promise<void> = async () => {}) {
  const seen: string[] = [];
  let res = await get(t.app, `${path}?pageSize=${pageSize}`);
  for (let pages = 1; ; pages++) {
    expect(res.status).toBe(200);
    expect(res.json.items.length).toBeLessThanOrEqual(pageSize);
    seen.push(...ids(res));
    const next = res.json.meta.next_cursor as string | null;
    if (next === null) return { seen, pages };
    await between();
    res = await get(t.app, `${path}?pageSize=${pageSize}&cursor=${encodeURIComponent(next)}`);
    expect(res.json.meta.page).toBeNull();
  }
}

async function walkPages(t: TestApp, path: string, pageSize: number): Promise<string[]> {
  const seen: string[] = [];
  for (let page = 1; ; page++) {
    const res = await get(t.app, `${path}?pageSize=${pageSize}&page=${page}`);
    if (res.json.items.length === 0) return seen;
    seen.push(...ids(res));
  }
}

const expectRefused = (res: TestResponse) => {
  expect(res.status).toBe(400);
  expect(res.json.code).toBe("validation_failed");
  expect(res.json.details).toContainEqual({ path: "query.cursor", message: expect.any(String) });
  expect(res.json.request_id).toBeString();
};

describe.each(["postgres", "embedded"] as const)("cursor pagination on %s", (database) => {
  let t: TestApp;
  let conversationId: string;
  let emptyList: TestResponse;
  beforeAll(async () => {
    t = await buildTestApp({ database, config: UNLIMITED });
    emptyList = await get(t.app, "/api/conversations");
    conversationId = await seed(t);
  }, 60_000); // PGlite starts in seconds, slower on a busy machine
  afterAll(() => t.close());

  const messagesPath = () => `/api/conversations/${conversationId}/messages`;

  test("an empty list answers next_cursor null", () => {
    expect(emptyList.json).toEqual({ items: [], meta: { page: 1, page_size: 50, total: 0, next_cursor: null } });
  });

  test("following next_cursor reads every conversation once, in the page-based order", async () => {
    const byPage = await walkPages(t, "/api/conversations", 10);
    const { seen, pages } = await walkCursor(t, "/api/conversations", 10);
    expect(byPage).toHaveLength(CONVERSATIONS + 1);
    expect(seen).toEqual(byPage);
    expect(pages).toBe(Math.ceil((CONVERSATIONS + 1) / 10));
  });

  test("following next_cursor reads every message once, in the page-based order", async () => {
    const byPage = await walkPages(t, messagesPath(), 7);
    const { seen } = await walkCursor(t, messagesPath(), 7);
    expect(byPage).toHaveLength(MESSAGES);
    expect(new Set(byPage).size).toBe(MESSAGES);
    expect(seen).toEqual(byPage);
  });

  test("the last page of an exact multiple has next_cursor null, not a cursor to an empty page", async () => {
    const total = (await walkPages(t, "/api/conversations", 50)).length;
    const size = Array.from({ length: 49 }, (_, k) => 50 - k).find((s) => total % s === 0)!;
    const last = await get(t.app, `/api/conversations?pageSize=${size}&page=${total / size}`);
    expect(last.json.items).toHaveLength(size);
    expect(last.json.meta.next_cursor).toBeNull();
    const before = await get(t.app, `/api/conversations?pageSize=${size}&page=${total / size - 1}`);
    const viaCursor = await get(t.app, `/api/conversations?pageSize=${size}&cursor=${before.json.meta.next_cursor}`);
    expect(ids(viaCursor)).toEqual(ids(last));
    expect(viaCursor.json.meta.next_cursor).toBeNull();
  });

  test("a page-based answer's next_cursor continues after it, and pageSize may change between cursor pages", async () => {
    const page3 = await get(t.app, "/api/conversations?page=3&pageSize=10");
    const page4 = await get(t.app, "/api/conversations?page=4&pageSize=10");
    const next = await get(t.app, `/api/conversations?pageSize=10&cursor=${page3.json.meta.next_cursor}`);
    expect(ids(next)).toEqual(ids(page4));
    const wider = await get(t.app, `/api/conversations?pageSize=25&cursor=${page3.json.meta.next_cursor}`);
    expect(ids(wider)).toEqual((await walkPages(t, "/api/conversations", 5)).slice(30, 55));
    expect(wider.json.meta).toMatchObject({ page: null, page_size: 25, next_cursor: expect.any(String) });
  });

  test("another app on the same database accepts the cursor: the signing key is stored, not per process", async () => {
    const other = await buildTestApp({ database: t.database });
    const first = await get(t.app, "/api/conversations?pageSize=10");
    const fromOther = await get(other.app, `/api/conversations?pageSize=10&cursor=${first.json.meta.next_cursor}`);
    expect(fromOther.status).toBe(200);
    expect(ids(fromOther)).toEqual(ids(await get(t.app, "/api/conversations?pageSize=10&page=2")));
  });

  test("messages sent during a walk do not make it skip or repeat a message that existed when it started", async () => {
    const before = new Set(await walkPages(t, messagesPath(), 50));
    let n = 0;
    const { seen } = await walkCursor(t, messagesPath(), 9, async () => {
      // One after everything, one in the middle of the seeded range, one before it: each page, from both sides.
      for (const timestamp of ["2031-01-01T00:00:00Z", "2030-01-01T00:00:00.015Z", "2029-01-01T00:00:00Z"]) {
        const res = await post(t.app, "/api/messages/sms", smsSend({ from: A, to: B, body: `during ${n++}`, timestamp }));
        expect(res.status).toBe(202);
      }
    });
    expect(n).toBeGreaterThan(0);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((id) => before.has(id)).sort()).toEqual([...before].sort());
  });

  test("conversations whose activity did not change during a walk are each seen exactly once", async () => {
    const before = await walkPages(t, "/api/conversations", 50);
    const touched = new Set<string>();
    let n = 0;
    const { seen } = await walkCursor(t, "/api/conversations", 8, async () => {
      // A new conversation inside the seeded time range, and new activity on a seeded one not yet listed.
      const fresh = await post(t.app, "/api/messages/sms", smsSend({ from: `+1888${String(n).padStart(7, "0")}`, to: B, timestamp: "2030-01-01T00:00:00.011Z" }));
      expect(fresh.status).toBe(202);
      const i = 100 - 3 * n++;
      const moved = await post(t.app, "/api/messages/sms", smsSend({ from: `+1555${String(i).padStart(7, "0")}`, to: `+1666${String(i).padStart(7, "0")}`, timestamp: "2040-01-01T00:00:00Z" }));
      expect(moved.status).toBe(202);
      touched.add(moved.json.conversation_id);
    });
    expect(touched.size).toBeGreaterThan(5);
    expect(new Set(seen).size).toBe(seen.length);
    const unchanged = before.filter((id) => !touched.has(id));
    expect(seen.filter((id) => unchanged.includes(id))).toEqual(unchanged);
  });

  describe("a cursor that is not one of this list's is a 400 naming query.cursor", () => {
    let conversationsCursor: string;
    let messagesCursor: string;
    beforeAll(async () => {
      conversationsCursor = (await get(t.app, "/api/conversations?pageSize=2")).json.meta.next_cursor;
      messagesCursor = (await get(t.app, `${messagesPath()}?pageSize=2`)).json.meta.next_cursor;
    });

    test.each(["garbage", "e30.AAAA", "%00%ff", "..", "a".repeat(300)])("cursor=%s", async (cursor) => {
      expectRefused(await get(t.app, `/api/conversations?cursor=${cursor}`));
      expectRefused(await get(t.app, `${messagesPath()}?cursor=${cursor}`));
    });

    test("truncated", async () => {
      expectRefused(await get(t.app, `/api/conversations?cursor=${conversationsCursor.slice(0, -3)}`));
      expectRefused(await get(t.app, `${messagesPath()}?cursor=${messagesCursor.slice(0, 20)}`));
    });

    test("tampered: one character of the payload changed", async () => {
      const c = conversationsCursor;
      const tampered = (c[3] === "A" ? "B" : "A") + c.slice(1);
      expectRefused(await get(t.app, `/api/conversations?cursor=${c.slice(0, 3) + tampered.slice(0, 1) + c.slice(4)}`));
    });

    test("of the other list", async () => {
      expectRefused(await get(t.app, `${messagesPath()}?cursor=${conversationsCursor}`));
      expectRefused(await get(t.app, `/api/conversations?cursor=${messagesCursor}`));
    });

    test("of another conversation's messages", async () => {
      const other = (await post(t.app, "/api/messages/sms", smsSend({ from: "+17770000003", to: B }))).json.conversation_id;
      expectRefused(await get(t.app, `/api/conversations/${other}/messages?cursor=${messagesCursor}`));
    });

    test("combined with page, even page=1", async () => {
      expectRefused(await get(t.app, `/api/conversations?page=1&cursor=${conversationsCursor}`));
      expectRefused(await get(t.app, `${messagesPath()}?page=2&pageSize=3&cursor=${messagesCursor}`));
    });

    test("given twice", async () => {
      expectRefused(await get(t.app, `/api/conversations?cursor=${conversationsCursor}&cursor=${conversationsCursor}`));
    });
  });
});
