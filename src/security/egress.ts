import { lookup } from "node:dns/promises";
import { canonicalAddress, classifyAddress } from "./address-class.ts";

export { type AddressClass, classifyAddress } from "./address-class.ts";

/**
 * The egress guard: the one way the service opens outbound connections (SPEC §8). Provider adapters
 * give it a URL and get back a whole, size-capped response, or an EgressRefusedError saying why not.
 *
 * What it defends against is server-side request forgery: a URL the service is made to call (a provider
 * base URL, a redirect, an attachment) that reaches the cloud metadata service, the database or anything
 * else on the private side. Hence: https only (http on request), an operator's host allowlist, the
 * name resolved once and every answer checked, and the connection made to that checked address, so a
 * DNS answer that changes between the check and the connect (rebinding) changes nothing.
 *
 * How the connection is pinned with Bun: `fetch` is given the URL with the checked IP literal in place
 * of the name, so Bun has nothing to resolve; the `Host` header carries the name, and `tls.serverName`
 * sets the SNI and the name the certificate must match (verified in test/security/egress-pinning.test.ts:
 * a certificate for another name is refused). An HTTP(S)_PROXY in the environment is still honoured by
 * Bun's fetch; the proxy is then asked for the checked IP, never the name.
 */

/** Why a request was not made or not completed; the closed list callers and logs can switch on. */
export type EgressRefusal =
  | "invalid_url"
  | "scheme"
  | "userinfo"
  | "host_not_allowed"
  | "port"
  | "resolve_failed"
  | "private_address"
  | "too_many_redirects"
  | "response_too_large"
  | "timeout"
  | "connection_failed";

/**
 * The refusals that may pass on their own (the network, DNS, an oversized or garbled answer): a caller retries
 * them. Every other refusal is the configuration (a host, scheme or port the guard will keep refusing).
 */
export const TRANSIENT_REFUSALS: ReadonlySet<EgressRefusal> = new Set<EgressRefusal>([
  "timeout",
  "connection_failed",
  "resolve_failed",
  "response_too_large",
]);

/** Every way a guarded request fails: a refusal by the guard, a timeout or a failed connection. */
export class EgressRefusedError extends Error {
  override name = "EgressRefusedError";
  constructor(
    readonly reason: EgressRefusal,
    message: string,
    /** The host (after URL normalisation) or address the refusal is about, when there is one. */
    readonly target?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Resolves a name to all its addresses, like `dns.promises.lookup(name, { all: true })`. */
export type Resolver = (host: string) => Promise<readonly { address: string; family: number }[]>;

export interface EgressOptions {
  /** Exact names (`api.example.com`), `.suffix` (any subdomain of it) or IP literals (exactly that address). */
  allowlist: readonly string[];
  allowHttp: boolean;
  /** Ports a URL may name; default 443, and 80 when http is allowed. */
  ports?: readonly number[];
  resolve?: Resolver;
  /** Time to connect and receive the response head, per hop. */
  connectTimeoutMs?: number;
  /** Time for the whole request: every redirect, resolution and the body. */
  timeoutMs?: number;
  maxResponseBytes?: number;
  maxRedirects?: number;
  /** Extra trusted certificates (PEM), for a provider behind a private CA. */
  ca?: string;
}

export interface EgressRequest {
  method?: string;
  headers?: Headers | Record<string, string>;
  body?: string | Uint8Array;
}

export interface EgressResponse {
  status: number;
  headers: Headers;
  body: Uint8Array;
  /** The URL that answered, after redirects, with its host name (not the address). */
  url: string;
}

/** A URL that passed every check, and the address a connection for it must go to. */
export interface EgressTarget {
  url: URL;
  address: string;
  family: 4 | 6;
}

export interface Egress {
  request(url: string, init?: EgressRequest): Promise<EgressResponse>;
  check(url: string): Promise<EgressTarget>;
}

const DEFAULTS = { connectTimeoutMs: 5_000, timeoutMs: 15_000, maxResponseBytes: 1024 * 1024, maxRedirects: 3 };

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

// Sent only to the origin they were meant for: a redirect elsewhere must not carry a provider's credentials.
const ORIGIN_BOUND_HEADERS = ["authorization", "proxy-authorization", "cookie"];

interface Allowlist {
  names: Set<string>;
  suffixes: string[];
  addresses: Set<string>;
}

/**
 * Entries in the form URLs are compared in: names through the WHATWG URL parser, so an entry in Unicode
 * is held as its punycode and a Cyrillic look-alike in a URL never equals it; addresses canonical.
 */
function parseAllowlist(entries: readonly string[]): Allowlist {
  const allow: Allowlist = { names: new Set(), suffixes: [], addresses: new Set() };
  for (const entry of entries.map((e) => e.trim()).filter(Boolean)) {
    const suffix = entry.startsWith(".");
    const bare = suffix ? undefined : canonicalAddress(entry); // an IPv6 address written without brackets
    if (bare !== undefined) {
      allow.addresses.add(bare);
      continue;
    }
    const host = URL.parse(`https://${suffix ? entry.slice(1) : entry}/`)?.hostname;
    if (!host) throw new RangeError(`SSRF_ALLOWLIST entry "${entry}" is not a host name, .suffix or IP address`);
    const address = canonicalAddress(host);
    if (address !== undefined && !suffix) allow.addresses.add(address);
    else if (suffix) allow.suffixes.push(`.${host}`);
    else allow.names.add(host);
  }
  return allow;
}

const refuse = (reason: EgressRefusal, message: string, target?: string): never => {
  throw new EgressRefusedError(reason, message, target);
};

/** Settles with `promise`, or rejects with a timeout as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(timeoutError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(timeoutError());
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

const timeoutError = () => new EgressRefusedError("timeout", "the outbound request timed out");

/** The scheme, credentials, host and port of a URL: everything that needs no DNS. */
function checkUrlAgainst(allow: Allowlist, ports: ReadonlySet<number>, allowHttp: boolean, raw: string | URL): URL {
  const url = URL.parse(String(raw)) ?? refuse("invalid_url", "not an absolute URL");
  const scheme = url.protocol;
  if (scheme !== "https:" && !(scheme === "http:" && allowHttp)) {
    refuse("scheme", `scheme ${scheme} is not allowed`, scheme);
  }
  if (url.username || url.password) refuse("userinfo", "URLs with credentials are refused", url.hostname);
  const literal = canonicalAddress(url.hostname);
  const nameAllowed = allow.names.has(url.hostname) || allow.suffixes.some((suffix) => url.hostname.endsWith(suffix));
  if (literal !== undefined ? !allow.addresses.has(literal) : !nameAllowed) {
    refuse("host_not_allowed", `host ${url.hostname} is not in SSRF_ALLOWLIST`, url.hostname);
  }
  const port = url.port ? Number(url.port) : scheme === "https:" ? 443 : 80;
  if (!ports.has(port)) refuse("port", `port ${port} is not allowed`, String(port));
  return url;
}

/**
 * Why the guard would refuse `url` before any DNS lookup (scheme, credentials, host, port), or undefined when it
 * would go on to resolve it. Start-up and `check` use it to refuse a provider whose API the guard would never let
 * a message reach, instead of failing every message at send time.
 */
export function egressUrlProblem(options: Pick<EgressOptions, "allowlist" | "allowHttp" | "ports">, url: string): string | undefined {
  const ports = new Set(options.ports ?? (options.allowHttp ? [443, 80] : [443]));
  try {
    checkUrlAgainst(parseAllowlist(options.allowlist), ports, options.allowHttp, url);
    return undefined;
  } catch (error) {
    if (error instanceof EgressRefusedError) return error.message;
    throw error;
  }
}

/** A guard for the given allowlist and limits. */
export function createEgress(options: EgressOptions): Egress {
  const allow = parseAllowlist(options.allowlist);
  const ports = new Set(options.ports ?? (options.allowHttp ? [443, 80] : [443]));
  const resolve = options.resolve ?? ((host: string) => lookup(host, { all: true }));
  const limits = { ...DEFAULTS, ...definedOnly(options) };

  const checkUrl = (raw: string | URL): URL => checkUrlAgainst(allow, ports, options.allowHttp, raw);

  /** The one address this URL may be connected to: resolved once, every answer checked. */
  async function checkTarget(raw: string | URL, signal: AbortSignal): Promise<EgressTarget> {
    const url = checkUrl(raw);
    const literal = canonicalAddress(url.hostname);
    if (literal !== undefined) return { url, address: literal, family: literal.includes(":") ? 6 : 4 };
    const answers = await untilAborted(Promise.resolve().then(() => resolve(url.hostname)), signal).catch((error: unknown) => {
      if (error instanceof EgressRefusedError) throw error;
      throw new EgressRefusedError("resolve_failed", `${url.hostname} did not resolve`, url.hostname, { cause: error });
    });
    const addresses = answers.map((answer) => canonicalAddress(answer.address));
    if (addresses.length === 0 || addresses.includes(undefined)) {
      refuse("resolve_failed", `${url.hostname} resolved to no usable address`, url.hostname);
    }
    // Every answer must pass, not just the one used: a name that answers both a public and a private
    // address is a rebinding attempt, and a retry by a later caller could get the other one.
    for (const address of addresses as string[]) {
      const kind = classifyAddress(address);
      if (kind !== "public" && !allow.addresses.has(address)) {
        refuse("private_address", `${url.hostname} resolves to a ${kind} address`, address);
      }
    }
    const address = addresses[0]!;
    return { url, address, family: address.includes(":") ? 6 : 4 };
  }

  /**
   * One HTTP exchange with the checked address, without following redirects. `stop` ends it for good:
   * cancelling a Bun fetch body leaves the download running, aborting its signal closes the connection.
   */
  async function send(target: EgressTarget, init: RequiredRequest, deadline: AbortSignal): Promise<Exchange> {
    const pinned = new URL(target.url);
    pinned.hostname = target.family === 6 ? `[${target.address}]` : target.address;
    const headers = new Headers(init.headers);
    headers.set("host", target.url.host);
    const isName = canonicalAddress(target.url.hostname) === undefined;
    const exchange = new AbortController();
    let connectTimedOut = false;
    const timer = setTimeout(() => {
      connectTimedOut = true;
      exchange.abort();
    }, limits.connectTimeoutMs);
    try {
      const response = await fetch(pinned, {
        method: init.method,
        headers,
        body: init.body ?? null,
        redirect: "manual",
        signal: AbortSignal.any([deadline, exchange.signal]),
        tls: { ...(isName ? { serverName: target.url.hostname } : {}), ...(options.ca ? { ca: options.ca } : {}) },
      });
      return { response, stop: () => exchange.abort() };
    } catch (error) {
      if (deadline.aborted || connectTimedOut) throw timeoutError();
      throw new EgressRefusedError("connection_failed", `connecting to ${target.url.host} failed`, target.address, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  async function readCapped({ response, stop }: Exchange, deadline: AbortSignal): Promise<Uint8Array> {
    const max = limits.maxResponseBytes;
    const declared = Number(response.headers.get("content-length") ?? 0);
    if (!response.headers.has("content-encoding") && declared > max) {
      stop();
      refuse("response_too_large", `the response declares ${declared} bytes, more than ${max}`);
    }
    if (!response.body) return new Uint8Array();
    const reader = response.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for (;;) {
        const { done, value } = await untilAborted(reader.read(), deadline);
        if (done) break;
        total += value.byteLength;
        if (total > max) refuse("response_too_large", `the response is larger than ${max} bytes`);
        chunks.push(value);
      }
    } catch (error) {
      stop();
      if (error instanceof EgressRefusedError) throw error;
      throw new EgressRefusedError("connection_failed", "the response body was cut off", undefined, { cause: error });
    }
    return Buffer.concat(chunks);
  }

  async function request(raw: string, init: EgressRequest = {}): Promise<EgressResponse> {
    const deadline = AbortSignal.timeout(limits.timeoutMs);
    let next: RequiredRequest = { method: (init.method ?? "GET").toUpperCase(), headers: new Headers(init.headers), body: init.body };
    let url: string | URL = raw;
    for (let redirects = 0; ; redirects++) {
      const target = await checkTarget(url, deadline);
      const exchange = await send(target, next, deadline);
      const { response } = exchange;
      const location = REDIRECTS.has(response.status) ? response.headers.get("location") : null;
      if (location === null) {
        return { status: response.status, headers: response.headers, body: await readCapped(exchange, deadline), url: target.url.href };
      }
      exchange.stop();
      if (redirects >= limits.maxRedirects) {
        refuse("too_many_redirects", `more than ${limits.maxRedirects} redirects`, target.url.href);
      }
      url = URL.parse(location, target.url.href) ?? refuse("invalid_url", "the redirect's Location is not a URL");
      next = redirected(next, response.status, target.url.origin !== url.origin);
    }
  }

  return {
    request,
    check: (url) => checkTarget(url, AbortSignal.timeout(limits.timeoutMs)),
  };
}

interface Exchange {
  response: Response;
  stop: () => void;
}

interface RequiredRequest {
  method: string;
  headers: Headers;
  body: string | Uint8Array | undefined;
}

/** The request a redirect asks for: 303 (and 301/302 after a POST) becomes a GET without a body, as browsers do. */
function redirected(previous: RequiredRequest, status: number, crossOrigin: boolean): RequiredRequest {
  const headers = new Headers(previous.headers);
  if (crossOrigin) for (const name of ORIGIN_BOUND_HEADERS) headers.delete(name);
  const toGet = (status === 303 && previous.method !== "HEAD") || ((status === 301 || status === 302) && previous.method === "POST");
  if (!toGet) return { ...previous, headers };
  for (const name of ["content-type", "content-length", "content-encoding"]) headers.delete(name);
  return { method: "GET", headers, body: undefined };
}

function definedOnly(options: EgressOptions): Partial<typeof DEFAULTS> {
  const { connectTimeoutMs, timeoutMs, maxResponseBytes, maxRedirects } = options;
  return Object.fromEntries(
    Object.entries({ connectTimeoutMs, timeoutMs, maxResponseBytes, maxRedirects }).filter(([, v]) => v !== undefined),
  );
}

/**
 * The guard the service uses: SSRF_ALLOWLIST and MESSAGING_EGRESS_ALLOW_HTTP, as the configuration read them (the
 * settings are passed in, so the guard does not depend on the configuration module).
 */
export function egressFromConfig(
  config: { readonly ssrfAllowlist: readonly string[]; readonly egressAllowHttp: boolean },
  overrides: Partial<EgressOptions> = {},
): Egress {
  return createEgress({ allowlist: config.ssrfAllowlist, allowHttp: config.egressAllowHttp, ...overrides });
}
