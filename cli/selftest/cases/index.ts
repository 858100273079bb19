import type { Case } from "../case.ts";
import { deliveryCases } from "./delivery.ts";
import { errorCases } from "./errors.ts";
import { idempotencyCases } from "./idempotency.ts";
import { operationsCases } from "./operations.ts";
import { readCases } from "./reads.ts";
import { securityCases } from "./security.ts";
import { sendCases } from "./sends.ts";
import { webhookCases } from "./webhooks.ts";

const isSenderLimit = (c: Case) => c.id === "errors.rate-limited";

/**
 * Every case of the suite, in the order they run within their lane. The per-sender limit comes last: finding
 * it spends a large share of the run's rate-limit budget, which the other cases should not wait for.
 */
export const ALL_CASES: readonly Case[] = [
  ...operationsCases,
  ...securityCases,
  ...errorCases.filter((c) => !isSenderLimit(c)),
  ...sendCases,
  ...webhookCases,
  ...idempotencyCases,
  ...readCases,
  ...deliveryCases,
  ...errorCases.filter(isSenderLimit),
];
