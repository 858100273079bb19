import { desc, eq, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { conversations } from "../../db/schema.ts";

export type ConversationRow = typeof conversations.$inferSelect;

/**
 * Prepared once: newest activity first, ties by id, with the total in the same round trip. The total is an
 * uncorrelated subquery (evaluated once, an index-only count) rather than `count(*) over ()`, which would
 * materialize every row before the LIMIT and cost four times as much.
 */
export function conversationQueries(db: Database) {
  const page = db
    .select({ conversation: conversations, total: sql<number>`(select count(*) from ${conversations})`.mapWith(Number) })
    .from(conversations)
    .orderBy(desc(conversations.lastActivityAt), desc(conversations.id))
    .limit(sql.placeholder("limit"))
    .offset(sql.placeholder("offset"))
    .prepare("conversations_page");
  const count = db
    .select({ total: sql<number>`count(*)`.mapWith(Number) })
    .from(conversations)
    .prepare("conversations_count");
  const messageCount = db
    .select({ messageCount: conversations.messageCount })
    .from(conversations)
    .where(eq(conversations.id, sql.placeholder("id")))
    .prepare("conversation_message_count");

  return {
    async page(limit: number, offset: number): Promise<{ rows: ConversationRow[]; total: number }> {
      const rows = await page.execute({ limit, offset });
      const total = rows[0]?.total ?? (await count.execute())[0]?.total ?? 0;
      return { rows: rows.map((r) => r.conversation), total };
    },
    /** The conversation's message count (kept exact by every insert), or undefined when it does not exist. */
    messageCount: async (id: number): Promise<number | undefined> => (await messageCount.execute({ id }))[0]?.messageCount,
  };
}

export type ConversationQueries = ReturnType<typeof conversationQueries>;
