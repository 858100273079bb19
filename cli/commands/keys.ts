import type { Command } from "commander";
import {
  type ApiKeyRecord,
  createApiKey,
  listApiKeys,
  parseDuration,
  parseRateLimit,
  revokeApiKey,
  SCOPES,
  type Scope,
  updateApiKeyRateLimit,
} from "../../src/security/api-keys.ts";
import { withMigratedDatabase } from "../database.ts";
import { EXIT } from "../exit.ts";
import { withDatabaseFlags } from "../options.ts";

const RATE_HELP = "requests per minute for this key, such as 600/min, 10/s or 36000/h (default: MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN)";

/** `messaging keys create | list | update | revoke`: the API keys of SPEC §8. */
export function keysCommand(program: Command): void {
  const keys = program.command("keys").description("manage API keys (create | list | update | revoke)");

  withDatabaseFlags(keys.command("create").description("create a key and print it once"))
    .requiredOption("--name <name>", "what the key is for (shown in lists)")
    .option("--scope <scopes>", `comma-separated scopes: ${SCOPES.join(", ")}`, SCOPES.join(","))
    .option("--expires <duration>", "lifetime such as 90d, 12h or 30m (default: never)")
    .option("--rate-limit <rate>", RATE_HELP)
    .option("--json", "machine-readable output")
    .action((options: { name: string; scope: string; expires?: string; rateLimit?: string; json?: boolean }, command: Command) =>
      withMigratedDatabase(command, async (database) => {
        const scopes = options.scope.split(",").map((s) => s.trim()).filter(Boolean);
        const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
        if (scopes.length === 0 || unknown.length > 0) usage(`--scope takes ${SCOPES.join(", ")} (comma-separated); got "${options.scope}"`);
        const name = options.name.trim();
        if (name.length === 0 || name.length > 200) usage("--name must be 1 to 200 characters");
        let expiresAt: Date | null = null;
        if (options.expires !== undefined) {
          const ms = parseDuration(options.expires);
          if (ms === null) usage(`--expires takes a duration such as 90d, 12h or 30m; got "${options.expires}"`);
          expiresAt = new Date(Date.now() + ms);
        }
        const rateLimitPerMin = options.rateLimit === undefined ? null : rateOption(options.rateLimit, false);
        const created = await createApiKey(database.sql, { name, scopes: scopes as Scope[], expiresAt, rateLimitPerMin });
        if (options.json) {
          console.log(
            JSON.stringify({ id: created.id, name: created.name, prefix: created.prefix, scopes: created.scopes, rate_limit_per_min: created.rateLimitPerMin, key: created.key }),
          );
        } else {
          console.log(created.key);
          process.stderr.write(
            `messaging: created key ${created.id} "${created.name}" (${created.scopes.join(", ")}${expiresAt ? `, expires ${expiresAt.toISOString()}` : ""}` +
              `${rateLimitPerMin !== null ? `, ${rateLimitPerMin}/min` : ""}). ` +
              "The key above is shown this once; store it now.\n",
          );
        }
      }),
    );

  withDatabaseFlags(keys.command("list").description("list keys (never the keys themselves)"))
    .option("--json", "machine-readable output")
    .action((options: { json?: boolean }, command: Command) =>
      withMigratedDatabase(command, async (database) => {
        const list = await listApiKeys(database.sql);
        if (options.json) console.log(JSON.stringify(list.map(listed)));
        else if (list.length === 0) console.log("no API keys");
        else for (const k of list) console.log(line(k));
      }),
    );

  withDatabaseFlags(keys.command("update").description("change a key's rate limit by its id or prefix (every instance applies it within seconds)"))
    .argument("<id>", "the key's id or prefix")
    .requiredOption("--rate-limit <rate>", `${RATE_HELP.replace(" (default: MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN)", "")}, or "default" for MESSAGING_RATE_LIMIT_PER_KEY_PER_MIN`)
    .option("--json", "machine-readable output")
    .action((id: string, options: { rateLimit: string; json?: boolean }, command: Command) =>
      withMigratedDatabase(command, async (database) => {
        const rate = rateOption(options.rateLimit, true);
        const updated = await updateApiKeyRateLimit(database.sql, id.trim(), rate);
        if (!updated) {
          process.stderr.write(`messaging: no API key has the id or prefix "${id}"\n`);
          process.exit(EXIT.failed);
        }
        if (options.json) console.log(JSON.stringify(listed(updated)));
        else console.log(`updated ${line(updated)}`);
      }),
    );

  withDatabaseFlags(keys.command("revoke").description("revoke a key by its id or prefix (every instance refuses it within seconds)"))
    .argument("<id>", "the key's id or prefix")
    .option("--json", "machine-readable output")
    .action((id: string, options: { json?: boolean }, command: Command) =>
      withMigratedDatabase(command, async (database) => {
        const revoked = await revokeApiKey(database.sql, id.trim());
        if (!revoked) {
          process.stderr.write(`messaging: no API key has the id or prefix "${id}"\n`);
          process.exit(EXIT.failed);
        }
        if (options.json) console.log(JSON.stringify(listed(revoked)));
        else console.log(`revoked ${line(revoked)}`);
      }),
    );
}

/** `--rate-limit` as requests per minute; `default` (when allowed) is null, the deployment's setting. */
function rateOption(text: string, allowDefault: boolean): number | null {
  if (allowDefault && text.trim().toLowerCase() === "default") return null;
  const rate = parseRateLimit(text);
  if (rate === null) usage(`--rate-limit takes a rate such as 600/min, 10/s or 36000/h (at least 1/min)${allowDefault ? ' or "default"' : ""}; got "${text}"`);
  return rate;
}

function usage(message: string): never {
  process.stderr.write(`messaging: ${message}\n`);
  process.exit(EXIT.usage);
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function listed(k: ApiKeyRecord) {
  return {
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    rate_limit_per_min: k.rateLimitPerMin,
    created_at: iso(k.createdAt),
    last_used_at: iso(k.lastUsedAt),
    expires_at: iso(k.expiresAt),
    revoked_at: iso(k.revokedAt),
  };
}

function line(k: ApiKeyRecord): string {
  const state = k.revokedAt ? "revoked" : k.expiresAt && k.expiresAt <= new Date() ? "expired" : "active";
  return [
    k.id,
    `msg_${k.prefix}_…`,
    JSON.stringify(k.name),
    k.scopes.join(","),
    state,
    `rate ${k.rateLimitPerMin === null ? "default" : `${k.rateLimitPerMin}/min`}`,
    `created ${k.createdAt.toISOString()}`,
    `last used ${k.lastUsedAt?.toISOString() ?? "never"}`,
    `expires ${k.expiresAt?.toISOString() ?? "never"}`,
  ].join("  ");
}
