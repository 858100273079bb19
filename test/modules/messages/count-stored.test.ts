import { describe, expect, test } from "bun:test";
import { createMetrics } from "../../../src/observability/metrics.ts";
import type { SqlRunner } from "../../../src/db/runner.ts";
import type { NewMessage, StoredIds } from "../../../src/modules/messages/repository.ts";
import { SendBatcher } from "../../../src/modules/messages/send-batcher.ts";
import { countStoredBatch, newMessage } from "../../../src/modules/messages/write.ts";
import { outboundRow as outbound } from "../../helpers/messaging.ts";

const TS = "2024-11-01T14:00:00Z";
const email = (body: string) =>
  newMessage({ channel: "email", from: "a@example.com", to: "b@example.com", body, attachments: [], timestamp: TS }, "outbound", null);
const mms = () =>
  newMessage({ channel: "mms", from: "+12015550030", to: "+18045550000", body: "pic", attachments: ["https://example.com/a.jpg"], timestamp: TS }, "outbound", null);

async function value(metrics: ReturnType<typeof createMetrics>, name: string, labels: Record<string, string>): Promise<number> {
  const text = await metrics.registry.metrics();
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && wanted.every((w) => l.includes(w)));
  return line ? Number(line.split(" ").at(-1)) : 0;
}

describe("unkeyed sends are counted once per batch", () => {
  test("countStoredBatch counts the stored messages by channel and their segments by encoding, not the refused", async () => {
    const metrics = createMetrics({ version: "test" });
    const messages: NewMessage[] = [outbound("+12015550031", "plain"), outbound("+12015550031", "€ euro"), email("hello"), mms(), outbound("+12015550031", "refused")];
    const stored: (StoredIds | null)[] = messages.map((_, i) => (i === 4 ? null : { id: String(i + 1), conversation_id: "1" }));
    countStoredBatch(metrics, messages, stored);
    expect(await value(metrics, "messaging_messages_accepted_total", { channel: "sms", direction: "outbound" })).toBe(2);
    expect(await value(metrics, "messaging_messages_accepted_total", { channel: "email", direction: "outbound" })).toBe(1);
    expect(await value(metrics, "messaging_messages_accepted_total", { channel: "mms", direction: "outbound" })).toBe(1);
    expect(await value(metrics, "messaging_sms_segments_total", { encoding: "GSM-7" })).toBe(3);
  });

  test("the batcher tells what each committed statement stored, in the callers' order", async () => {
    const sql: SqlRunner = {
      query: <T>(_text: string, params: unknown[] = []) => {
        const size = typeof params[0] === "string" && params[0].startsWith("[") ? (JSON.parse(params[0]) as unknown[]).length : 1;
        // The second message of every statement is refused (an opt-out): a row of NULLs in its place.
        const rows = Array.from({ length: size }, (_, i) => (i === 1 ? { id: null, conversation_id: null } : { id: String(i + 1), conversation_id: "1" }));
        return Promise.resolve(rows as T[]);
      },
      transaction: (fn) => fn(sql),
    };
    const told: { bodies: string[]; ids: (string | null)[] }[] = [];
    const batcher = new SendBatcher(sql, {
      maxInFlight: 1,
      maxBatch: 256,
      observe: { stored: (messages, ids) => told.push({ bodies: messages.map((m) => m.body), ids: ids.map((x) => x?.id ?? null) }) },
    });
    const sends = ["a", "b", "c"].map((body) => batcher.submit(outbound("+12015550032", body)));
    await Promise.all(sends);
    expect(told).toEqual([
      { bodies: ["a"], ids: ["1"] },
      { bodies: ["b", "c"], ids: ["1", null] },
    ]);
  });
});
