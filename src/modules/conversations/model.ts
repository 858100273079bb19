import { z } from "zod";
import { pageMeta } from "../../http/pagination.ts";
import { messageItemSchema } from "../messages/model.ts";

export const conversationItemSchema = z.object({
  id: z.string(),
  key: z.string().meta({ description: "{transport}:{a}<->{b}, a ≤ b the normalized addresses in byte order" }),
  channel: z.enum(["sms", "email"]).meta({ description: "Transport: sms (SMS and MMS) or email" }),
  participant_a: z.string(),
  participant_b: z.string(),
  message_count: z.number().int(),
  last_activity_at: z.string(),
});

export const conversationModels = {
  "conversations.page": z.object({ items: z.array(conversationItemSchema), meta: pageMeta }),
  "conversations.messagesPage": z.object({ items: z.array(messageItemSchema), meta: pageMeta }),
};

export type ConversationItem = z.infer<typeof conversationItemSchema>;
