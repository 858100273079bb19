import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { EXIT, fail } from "../exit.ts";

const DEFAULT_TIMEOUT_SECS = 20;

interface Flags {
  target: string;
  token?: string;
  tokenFile?: string;
  webhookSecretFile?: string;
  reportJunit?: string;
  reportJson?: string;
  only?: string;
  skip?: string;
  timeout?: string;
}

/** A reason the run cannot start as asked, printed as one line (exit 2). */
function usage(message: string): never {
  process.stderr.write(`messaging selftest: ${message}\n`);
  process.exit(EXIT.usage);
}

/** A secret kept in a file (an API key, a webhook secret), without the newline an editor or `echo` leaves. */
function readSecretFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    usage(`cannot read ${what} file ${path}: ${(err as Error).message}`);
  }
  const secret = text.trim();
  if (!secret) usage(`${what} file ${path} is empty`);
  return secret;
}

function targetUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    usage(`--target must be an absolute http(s) URL, not "${raw}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") usage(`--target must be an http or https URL, not ${url.protocol}`);
  if (url.search || url.hash) usage("--target is the service's base URL, without a query or fragment");
  // The cases name absolute paths (/api/…): a base with a path of its own would be dropped, so it is refused.
  if (url.pathname !== "/") usage(`--target is the service's base URL (scheme, host and port), without the path ${url.pathname}`);
  return url.origin;
}

/**
 * `messaging selftest --target URL`: the built-in parity suite, run from outside against a deployment, as a CI
 * step after each deploy. Exit 0 when no case failed, 1 when one did (or the target cannot be tested), 2 on bad
 * usage.
 */
export function selftestCommand(program: Command): void {
  program
    .command("selftest")
    .description("run the built-in parity suite against a deployment (--target URL)")
    .requiredOption("--target <url>", "base URL of the deployment, e.g. https://messaging.example.com")
    .option("--token <key>", "API key sent as Authorization: Bearer (read, send and, for the mock provider's cases, admin scopes)")
    .option("--token-file <path>", "file holding the API key (keeps it out of the process list)")
    .option("--webhook-secret-file <path>", "file holding one of the target's MESSAGING_WEBHOOK_SECRETS, to sign webhooks")
    .option("--report-junit <path>", "write a JUnit XML report")
    .option("--report-json <path>", "write a JSON report of every case")
    .option("--only <tags>", "run only the cases carrying one of these comma-separated tags or ids (e.g. sends,idempotency)")
    .option("--skip <tags>", "leave out the cases carrying one of these tags or ids (e.g. breaker,ratelimit for a quick run)")
    .option("--timeout <seconds>", `timeout of each case (default ${DEFAULT_TIMEOUT_SECS})`)
    .addHelpText(
      "after",
      [
        "",
        "Each run uses fresh data that never repeats: +1555… numbers with a random run part, *.example.test",
        "addresses and the run id in every body. Cases needing what the target lacks or a setting rules out (auth",
        "off, no mock provider, signed webhooks without a secret, a per-sender limit above what a case may spend)",
        "are skipped with the reason; a failure always means the target broke its contract. A case that changes",
        "the mock provider's config restores it.",
        "",
        "The run keeps inside the target's rate limits (it reads the RateLimit-* headers): with a key it is charged",
        "to the key's limit (MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN, 6,000 a minute by default), so a full run takes",
        "well under 30 s; without one, to the per-IP limit (120 a minute by default: about 2 minutes). The breaker",
        "case shortens the cool-down through the mock's runtime config, and skips where the target cannot.",
        "Exit 0 when no case failed, 1 when one did or the target cannot be tested, 2 on bad usage.",
        "",
        "Example (a CI step after a deploy):",
        "  messaging selftest --target https://messaging.example.com --token-file selftest.key \\",
        "    --report-junit selftest.xml",
      ].join("\n"),
    )
    .action(async (flags: Flags) => {
      try {
        const target = targetUrl(flags.target);
        if (flags.token !== undefined && flags.tokenFile !== undefined) usage("give the API key once: --token or --token-file");
        const token = flags.tokenFile !== undefined ? readSecretFile(flags.tokenFile, "the API key") : flags.token?.trim() || undefined;
        const webhookSecret = flags.webhookSecretFile !== undefined ? readSecretFile(flags.webhookSecretFile, "the webhook secret") : undefined;
        const timeoutSecs = flags.timeout === undefined ? DEFAULT_TIMEOUT_SECS : Number(flags.timeout);
        if (!Number.isFinite(timeoutSecs) || timeoutSecs <= 0 || timeoutSecs > 3600) usage(`--timeout must be seconds from 1 to 3600, not "${flags.timeout}"`);
        const { knownSelectors, runSelftest } = await import("../selftest/run.ts");
        const known = knownSelectors();
        const selectors = (flag: "only" | "skip") => {
          const list = (flags[flag] ?? "").split(",").map((t) => t.trim()).filter(Boolean);
          const unknown = list.filter((t) => !known.has(t));
          if (unknown.length > 0) usage(`--${flag} names no case: ${unknown.join(", ")} (tags: ${[...known].filter((t) => !t.includes(".")).sort().join(", ")})`);
          return list;
        };
        const only = selectors("only");
        const skip = selectors("skip");

        const outcome = await runSelftest({
          target,
          token,
          webhookSecret,
          only,
          skip,
          timeoutSecs,
          reportJunit: flags.reportJunit,
          reportJson: flags.reportJson,
          tty: process.stdout.isTTY === true,
          write: (text) => process.stdout.write(text),
        });
        if (outcome.kind === "unreachable") {
          process.stderr.write(`messaging selftest: ${outcome.message}\n`);
          process.exit(EXIT.failed);
        }
        process.exit(outcome.summary.failed === 0 ? EXIT.ok : EXIT.failed);
      } catch (err) {
        fail(err);
      }
    });
}
