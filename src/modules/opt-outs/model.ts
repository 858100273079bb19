import { z } from "zod";
import { phoneAddressProblem } from "../../domain/address.ts";
import { pageMeta, paginationQuery } from "../../http/pagination.ts";

export const optOutItemSchema = z.object({
  from: z.string().meta({ description: "Our number (normalized): sends from it to `to` are refused with 422 recipient_opted_out" }),
  to: z.string().meta({ description: "The person's number (normalized), who opted out of messages from `from`" }),
  source: z
    .enum(["inbound", "provider"])
    .meta({ description: "inbound: they texted an opt-out keyword to `from`; provider: a provider refused a send as unsubscribed" }),
  reason: z.string().meta({ description: "The keyword as texted, upper-cased (STOP, UNSUBSCRIBE, …), or the provider's code (twilio 21610)" }),
  message_id: z
    .string()
    .nullable()
    .meta({ description: "The inbound keyword message, or the outbound message the provider refused; it may since have been deleted" }),
  created_at: z.string().meta({ description: "When the opt-out was recorded; a repeated STOP keeps the first" }),
});

/** A phone number filter, compared after normalization (`+1 (201) 555-0100` finds `+12015550100`). */
const phoneFilter = (side: string, what: string) =>
  z
    .string({ error: `${side} must be given once` })
    .superRefine((s, ctx) => {
      const problem = phoneAddressProblem(s);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .optional()
    .meta({ description: `Only opt-outs whose \`${side}\` (${what}) is this phone number, compared normalized` });

/** `page`/`pageSize`/`cursor` as every list has them, plus the two optional filters. */
export const optOutsQuery = z
  .object({ from: phoneFilter("from", "our number"), to: phoneFilter("to", "the person who opted out") })
  .and(paginationQuery);

export type OptOutsQuery = z.output<typeof optOutsQuery>;

export const optOutModels = {
  "optOuts.page": z.object({ items: z.array(optOutItemSchema), meta: pageMeta }),
};

export type OptOutItem = z.infer<typeof optOutItemSchema>;
