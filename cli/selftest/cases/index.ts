import type { Case } from "../case.ts";
import { deliveryCases } from "./delivery.ts";
import { errorCases } from "./errors.ts";
import { idempotencyCases } from "./idempotency.ts";
import { operationsCases } from "./operations.ts";
import { optOutCases } from "./opt-outs.ts";
import { readCases } from "./reads.ts";
import { schedulingCases } from "./scheduling.ts";
import { securityCases } from "./security.ts";
import { sendCases } from "./sends.ts";
import { webhookCases } from "./webhooks.ts";

const isSenderLimit = (c: Case) => c.id === "errors.rate-limited";

/**
 * Every case of the suite, in the order they run within their lane. The per-sender limit comes first: finding
 * it takes a burst of sends, which only fits while the run's per-client bucket is still full.
 */
export const ALL_CASES: readonly Case[] = [
  ...errorCases.filter(isSenderLimit),
  ...operationsCases,
  ...securityCases,
  ...errorCases.filter((c) => !isSenderLimit(c)),
  ...sendCases,
  ...webhookCases,
  ...optOutCases,
  ...idempotencyCases,
  ...readCases,
  ...deliveryCases,
  ...schedulingCases,
];
