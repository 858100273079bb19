import { desc, eq, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { conversations } from "../../db/schema.ts";

export type ConversationRow = typeof conversations.$inferSelect;

/** Prepared once: newest activity first, ties by id, with the total in the same round trip. */
export function conversationQueries(db: Database) {
  const page = db
    .select({ conversation: conversations, total: sql<number>`count(*) over ()`.mapWith(Number) })
    .from(conversations)
    .orderBy(desc(conversations.lastActivityAt), desc(conversations.id))
    .limit(sql.placeholder("limit"))
    .offset(sql.placeholder("offset"))
    .prepare("conversations_page");
  const count = db
    .select({ total: sql<number>`count(*)`.mapWith(Number) })
    .from(conversations)
    .prepare("conversations_count");
  const exists = db
    .select({ id: conversations.id })
    .from(conversations)
    .where(eq(conversations.id, sql.placeholder("id")))
    .prepare("conversation_exists");

  return {
    async page(limit: number, offset: number): Promise<{ rows: ConversationRow[]; total: number }> {
      const rows = await page.execute({ limit, offset });
      const total = rows[0]?.total ?? (await count.execute())[0]?.total ?? 0;
      return { rows: rows.map((r) => r.conversation), total };
    },
    exists: async (id: number) => (await exists.execute({ id })).length > 0,
  };
}

export type ConversationQueries = ReturnType<typeof conversationQueries>;
