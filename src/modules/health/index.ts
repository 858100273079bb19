import { Elysia } from "elysia";
import { documentedResponses } from "../../http/error-model.ts";
import { AppError } from "../../http/errors.ts";
import { type Metrics, metricsSnapshot } from "../../observability/metrics.ts";
import { acceptsJsonFirst, type ReadinessProbe } from "./service.ts";
import { healthModel } from "./model.ts";

const HEALTH_OK_BODY = { status: "ok" } as const;

/** Liveness, readiness and metrics: what an orchestrator and an operator poll. */
export function healthModule(deps: { healthPath: string; readiness: ReadinessProbe; metrics: Metrics; draining?: AbortSignal | undefined }) {
  return new Elysia({ name: "health", detail: { tags: ["Operations"] } })
    .use(healthModel)
    // Described, not validated: Elysia's response hook would check this constant on every probe, and make the
    // route's handler asynchronous.
    .get(deps.healthPath, (): { status: "ok" } => HEALTH_OK_BODY, {
      detail: { summary: "Liveness: 200 while the process runs", responses: documentedResponses({ 200: "health.ok" }) },
    })
    .get(
      "/readyz",
      async () => {
        // From the first moment of a shutdown, so load balancers stop sending work while in-flight requests finish.
        if (deps.draining?.aborted) throw new AppError("service_unavailable", "the service is shutting down", { headers: { "retry-after": "5" } });
        const ready = await deps.readiness.check();
        if (!ready.ok) {
          throw new AppError("service_unavailable", `not ready: ${ready.reason}`, { headers: { "retry-after": "5" }, logDetail: ready.detail });
        }
        return { status: "ready" as const };
      },
      { detail: { summary: "Readiness: 200 when the database answers and no migration is pending, else 503 (also from the start of a shutdown)" } },
    )
    .get(
      "/metrics",
      async ({ request, set }) => {
        if (acceptsJsonFirst(request.headers.get("accept"))) return metricsSnapshot(deps.metrics);
        set.headers["content-type"] = deps.metrics.registry.contentType;
        return deps.metrics.registry.metrics();
      },
      { detail: { summary: "Prometheus metrics; with Accept: application/json a flat JSON snapshot of the main counters" } },
    );
}
