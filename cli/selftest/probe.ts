import type { Feature } from "./case.ts";
import { type Answer, type Client, clipLine } from "./client.ts";

/** What the probe learnt of the target before any case runs. */
export interface Target {
  url: string;
  /** Each feature the target offers, or why it does not (the skip reason of the cases needing it). */
  features: Map<Feature, true | string>;
  /** The answer to an /api request sent without a key (the auth case checks it: one failed login per run, not two). */
  anonymousAnswer: Answer;
  /** The mock provider's config as found, restored by the cases that change it. */
  mockConfig?: Record<string, unknown>;
}

/** The target cannot be tested at all: one line says why, and the run stops before the first case. */
export class ProbeError extends Error {
  override name = "ProbeError";
}

const isHtml = (a: Answer) => /text\/html/i.test(a.headers.get("content-type") ?? "") || /^\s*<(!doctype|html)/i.test(a.text);

/**
 * Looks at the target before the suite runs, so a target that is down, answers HTML or is another service
 * fails with one clear line instead of a wall of failures: `/healthz` must answer `{"status":"ok"}` and
 * `/openapi.json` must describe this API. Then learns which optional features the target offers.
 */
export async function probeTarget(http: Client, url: string, options: { haveToken: boolean; haveSecret: boolean }): Promise<Target> {
  const health = await reach(http, "/healthz", url);
  if (isHtml(health)) throw new ProbeError(`${url} answered /healthz with an HTML page (HTTP ${health.status}), not the messaging API: is this the right URL?`);
  if (health.status !== 200 || health.body.status !== "ok") {
    throw new ProbeError(`${url} is not a messaging service: /healthz answered HTTP ${health.status} ${clipLine(health.text)}`);
  }
  const docs = await reach(http, "/openapi.json", url);
  if (docs.status === 401) {
    throw new ProbeError(`${url} wants an API key for /openapi.json: ${options.haveToken ? "the key given (--token) was refused" : "pass one with --token"}`);
  }
  const paths = (docs.body.paths ?? {}) as Record<string, unknown>;
  if (docs.status !== 200 || !String(docs.body.openapi ?? "").startsWith("3.") || !("/api/messages/sms" in paths)) {
    throw new ProbeError(
      `${url} is not the messaging API: /openapi.json answered HTTP ${docs.status}${isHtml(docs) ? " with an HTML page" : ""} without the route /api/messages/sms`,
    );
  }

  const features = new Map<Feature, true | string>();
  const anonymousAnswer = await http.get("/api/conversations?pageSize=1", { anonymous: true });
  if (anonymousAnswer.status === 401) {
    features.set("auth", true);
    if (!options.haveToken) throw new ProbeError(`${url} requires an API key (401 without one): pass it with --token`);
    const keyed = await http.get("/api/conversations?pageSize=1");
    if (keyed.status === 401) throw new ProbeError(`${url} refused the API key given with --token (401)`);
    if (keyed.status === 403) throw new ProbeError(`the API key given with --token lacks the read scope on ${url} (403)`);
  } else if (anonymousAnswer.status === 200) {
    features.set("auth", "the target runs with API-key authentication off (MESSAGING_AUTH=off)");
  } else {
    throw new ProbeError(`${url} answered GET /api/conversations with HTTP ${anonymousAnswer.status} ${clipLine(anonymousAnswer.text)}`);
  }

  features.set("https", url.startsWith("https:") ? true : "the target is plain http (HSTS is only promised behind https)");

  features.set("webhooks", await webhookAccess(http, features, options));

  const target: Target = { url, features, anonymousAnswer };
  const mock = await http.get("/api/provider/mock/config");
  if (mock.status === 200 && typeof mock.body.error_pct === "number") {
    target.mockConfig = mock.body;
    features.set("mock", true);
  } else if (mock.status === 403) {
    features.set("mock", "the API key given lacks the admin scope the mock provider's routes need");
  } else {
    features.set("mock", `the target exposes no mock provider (GET /api/provider/mock/config answered ${mock.status})`);
  }
  return target;
}

/**
 * How the target lets inbound webhooks in, learnt from an empty body that stores nothing. Without a key and with a
 * signature that cannot verify: a 401 without `WWW-Authenticate: Bearer` is the signature refused (the target has
 * webhook secrets), one with it is a key demanded (auth on, no secrets: only an inbound-scope key opens them), and
 * anything else (400) means webhooks are open. Sets `signing`; returns whether the cases can post webhooks.
 */
async function webhookAccess(http: Client, features: Map<Feature, true | string>, options: { haveToken: boolean; haveSecret: boolean }): Promise<true | string> {
  const bogus = `t=${Math.floor(Date.now() / 1000)},v1=${"0".repeat(64)}`;
  const keyless = await http.post("/api/webhooks/sms", {}, { unsigned: true, anonymous: true, headers: { "x-messaging-signature": bogus } });
  const keyDemanded = keyless.status === 401 && /^bearer/i.test(keyless.headers.get("www-authenticate") ?? "");
  if (keyless.status === 401 && !keyDemanded) {
    features.set("signing", true);
    return options.haveSecret ? true : "the target requires X-Messaging-Signature on webhooks and no secret was given (--webhook-secret-file)";
  }
  features.set("signing", "webhooks are accepted unsigned (the target has no MESSAGING_WEBHOOK_SECRETS)");
  if (!keyDemanded) return true;
  // Auth on and no secrets: the key given must carry the inbound scope (a 400 for the empty body says it does).
  const keyed = await http.post("/api/webhooks/sms", {}, { unsigned: true });
  if (keyed.status === 403) return "the API key given lacks the inbound scope the target's webhooks need (it has no MESSAGING_WEBHOOK_SECRETS)";
  return true;
}

/** One probe request; a target that does not answer at all is the one clear line. */
async function reach(http: Client, path: string, url: string): Promise<Answer> {
  try {
    return await http.get(path);
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code;
    const reason = err instanceof Error && err.name === "TimeoutError" ? "no answer in time" : (cause ?? (err as Error).message);
    throw new ProbeError(`cannot reach ${url}: ${reason}`);
  }
}
