import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { signWebhook } from "../../src/security/webhook-signature.ts";
import { EXIT, fail } from "../exit.ts";

const UNIX_SECONDS = /^\d{1,15}$/;

/** A reason `webhooks sign` cannot sign, printed as one line (exit 2). */
function usage(message: string): never {
  process.stderr.write(`messaging: ${message}\n`);
  process.exit(EXIT.usage);
}

/**
 * The secret in a file, without the surrounding whitespace (the trailing newline an editor or `echo` leaves),
 * exactly as the service reads each entry of MESSAGING_WEBHOOK_SECRETS.
 */
function readSecret(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    usage(`cannot read the secret file ${path}: ${(err as Error).message}`);
  }
  const secret = text.trim();
  if (!secret) usage(`the secret file ${path} is empty`);
  // The service splits MESSAGING_WEBHOOK_SECRETS at commas: such a secret could never verify there.
  if (secret.includes(",")) usage("a webhook secret cannot contain a comma (MESSAGING_WEBHOOK_SECRETS is comma-separated)");
  return secret;
}

/**
 * `messaging webhooks sign --secret-file F [--timestamp T] < body.json`: prints the `X-Messaging-Signature` value
 * for the body on stdin, read as bytes and signed exactly as sent. For operators wiring a sender, and for tests.
 */
export function webhooksCommand(program: Command): void {
  const webhooks = program.command("webhooks").description("tools for senders of signed webhooks (sign)");
  webhooks
    .command("sign")
    .description("print the X-Messaging-Signature header value for the request body read from stdin")
    .requiredOption("--secret-file <path>", "file holding one of MESSAGING_WEBHOOK_SECRETS (surrounding whitespace ignored)")
    .option("--timestamp <unix>", "signing time in unix seconds (default: now); the service accepts it within MESSAGING_WEBHOOK_TOLERANCE_SECS")
    .addHelpText(
      "after",
      [
        "",
        "The value is t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + \".\" + body)>, computed over the exact bytes",
        "on stdin: send those same bytes, unchanged, as the request body.",
        "",
        "Example:",
        "  sig=$(messaging webhooks sign --secret-file webhook.secret < body.json)",
        "  curl -H 'Content-Type: application/json' -H \"X-Messaging-Signature: $sig\" \\",
        "       --data-binary @body.json http://localhost:8080/api/webhooks/sms",
      ].join("\n"),
    )
    .action(async (options: { secretFile: string; timestamp?: string }) => {
      try {
        const secret = readSecret(options.secretFile);
        if (options.timestamp !== undefined && !UNIX_SECONDS.test(options.timestamp)) {
          usage(`--timestamp must be unix seconds (decimal digits), not "${options.timestamp}"`);
        }
        const t = options.timestamp === undefined ? Math.floor(Date.now() / 1000) : Number(options.timestamp);
        const body = await Bun.stdin.bytes();
        process.stdout.write(`${signWebhook(secret, body, t)}\n`);
        process.exit(EXIT.ok);
      } catch (err) {
        fail(err);
      }
    });
}
