import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  claimIdempotencyKey,
  purgeExpiredIdempotencyKeys,
  rememberResponse,
} from "../../../src/modules/idempotency/service.ts";
import { buildTestApp, type TestApp } from "../../helpers/app.ts";
import { countRows } from "../../helpers/messaging.ts";

// The service against a real PostgreSQL database, without HTTP: claims inside a caller's transaction and the purge.
let t: TestApp;
beforeAll(async () => {
  t = await buildTestApp();
});
afterAll(() => t.close());

async function insertKey(key: string, expiresIn: string) {
  await t.database.sql.query(
    `INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body, expires_at)
     VALUES ('test:POST /x', $1, 'h', 202, '{}'::jsonb, now() + $2::interval)`,
    [key, expiresIn],
  );
}

describe("purgeExpiredIdempotencyKeys", () => {
  test("deletes rows past expires_at, keeps live ones, and answers how many it deleted", async () => {
    await insertKey("expired-1", "-1 hour");
    await insertKey("expired-2", "-1 second");
    await insertKey("live-1", "1 hour");
    await insertKey("live-2", "24 hours");
    expect(await purgeExpiredIdempotencyKeys(t.database.sql)).toBe(2);
    const left = await t.database.sql.query<{ key: string }>("SELECT key FROM idempotency_keys ORDER BY key");
    expect(left.map((r) => r.key)).toEqual(["live-1", "live-2"]);
  });

  test("answers 0 and deletes nothing when no row has expired", async () => {
    const before = await countRows(t.database, "idempotency_keys");
    expect(await purgeExpiredIdempotencyKeys(t.database.sql)).toBe(0);
    expect(await countRows(t.database, "idempotency_keys")).toBe(before);
  });
});

describe("claimIdempotencyKey and rememberResponse", () => {
  const req = (key: string, hash = "hash-a") => ({ scope: "svc:POST /api/messages/sms", key, hash });

  test("an unknown key is claimed (null), and the remembered response is then returned for the same hash", async () => {
    const r = req("svc-1");
    await t.database.sql.transaction(async (tx) => {
      expect(await claimIdempotencyKey(tx, r)).toBeNull();
      await rememberResponse(tx, r, { status: 202, body: { status: "accepted", id: "9" } }, 24);
    });
    const stored = await t.database.sql.transaction((tx) => claimIdempotencyKey(tx, r));
    expect(stored).toEqual({ status: 202, body: { status: "accepted", id: "9" } });
  });

  test("a remembered key with another hash is refused with idempotency_key_reused", async () => {
    const r = req("svc-2");
    await t.database.sql.transaction((tx) => rememberResponse(tx, r, { status: 202, body: {} }, 24));
    const attempt = t.database.sql.transaction((tx) => claimIdempotencyKey(tx, req("svc-2", "hash-b")));
    await expect(attempt).rejects.toMatchObject({ code: "idempotency_key_reused", status: 422 });
  });

  test("a key claimed by an open transaction is refused with idempotency_key_in_use", async () => {
    const r = req("svc-3");
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let claimed!: () => void;
    const isClaimed = new Promise<void>((resolve) => {
      claimed = resolve;
    });
    const first = t.database.sql.transaction(async (tx) => {
      await claimIdempotencyKey(tx, r);
      claimed();
      await held;
    });
    await isClaimed;
    const second = t.database.sql.transaction((tx) => claimIdempotencyKey(tx, r));
    await expect(second).rejects.toMatchObject({ code: "idempotency_key_in_use", status: 409 });
    release();
    await first;
  });

  test("a claim rolled back with its transaction leaves the key free", async () => {
    const r = req("svc-4");
    const failing = t.database.sql.transaction(async (tx) => {
      await claimIdempotencyKey(tx, r);
      await rememberResponse(tx, r, { status: 202, body: {} }, 24);
      throw new Error("insert failed");
    });
    await expect(failing).rejects.toThrow("insert failed");
    expect(await t.database.sql.transaction((tx) => claimIdempotencyKey(tx, r))).toBeNull();
  });
});

// jsonb keeps an object's keys sorted by length: a replay rebuilt from it differed from the answer it repeats.
describe.each(["postgres", "embedded"] as const)("a stored response on %s (migration 0021)", (database) => {
  let app: TestApp;
  beforeAll(async () => {
    app = database === "postgres" ? t : await buildTestApp({ database });
  }, 60_000);
  afterAll(() => (database === "postgres" ? undefined : app.close()));
  const req = (key: string) => ({ scope: `order-${database}:POST /x`, key, hash: "h" });
  // Keys that jsonb would put in another order, at the top and below it.
  const body = { status: "accepted", id: "9", conversation_id: "3", detail: { zebra: 1, ox: [{ longest: true, a: null }] } };

  test("replays the first answer's text: every key in its first order, at every depth", async () => {
    const r = req("order-1");
    await app.database.sql.transaction((tx) => rememberResponse(tx, r, { status: 202, body }, 24));
    const stored = await app.database.sql.transaction((tx) => claimIdempotencyKey(tx, r));
    expect(JSON.stringify(stored!.body)).toBe(JSON.stringify(body));
  });

  test("a binary of before 0021 (reading response_body) still finds the same answer", async () => {
    const r = req("order-2");
    await app.database.sql.transaction((tx) => rememberResponse(tx, r, { status: 202, body }, 24));
    const [row] = await app.database.sql.query<{ response_body: unknown }>("SELECT response_body FROM idempotency_keys WHERE scope = $1 AND key = $2", [r.scope, r.key]);
    expect(row!.response_body).toEqual(body);
  });

  test("a row stored before 0021 (no text) is replayed from its jsonb copy", async () => {
    const r = req("order-3");
    // As a binary of before 0021 writes it, during an upgrade or before it.
    await app.database.sql.query(
      `INSERT INTO idempotency_keys (scope, key, request_hash, response_status, response_body, expires_at)
       VALUES ($1, $2, 'h', 202, $3::jsonb, now() + interval '1 hour')`,
      [r.scope, r.key, JSON.stringify(body)],
    );
    const stored = await app.database.sql.transaction((tx) => claimIdempotencyKey(tx, r));
    expect(stored).toEqual({ status: 202, body });
  });
});
