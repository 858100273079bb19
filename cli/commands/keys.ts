import type { Command } from "commander";
import type { DatabaseHandle } from "../../src/db/client.ts";
import { type ApiKeyRecord, createApiKey, listApiKeys, parseDuration, revokeApiKey, SCOPES, type Scope } from "../../src/security/api-keys.ts";
import { EXIT, fail } from "../exit.ts";
import { configFor, withDatabaseFlags } from "../options.ts";

/** `messaging keys create | list | revoke`: the API keys of SPEC §8. */
export function keysCommand(program: Command): void {
  const keys = program.command("keys").description("manage API keys (create | list | revoke)");

  withDatabaseFlags(keys.command("create").description("create a key and print it once"))
    .requiredOption("--name <name>", "what the key is for (shown in lists)")
    .option("--scope <scopes>", `comma-separated scopes: ${SCOPES.join(", ")}`, SCOPES.join(","))
    .option("--expires <duration>", "lifetime such as 90d, 12h or 30m (default: never)")
    .option("--json", "machine-readable output")
    .action((options: { name: string; scope: string; expires?: string; json?: boolean }, command: Command) =>
      withKeyStore(command, async (database) => {
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
        const created = await createApiKey(database.sql, { name, scopes: scopes as Scope[], expiresAt });
        if (options.json) {
          console.log(JSON.stringify({ id: created.id, name: created.name, prefix: created.prefix, scopes: created.scopes, key: created.key }));
        } else {
          console.log(created.key);
          process.stderr.write(
            `messaging: created key ${created.id} "${created.name}" (${created.scopes.join(", ")}${expiresAt ? `, expires ${expiresAt.toISOString()}` : ""}). ` +
              "The key above is shown this once; store it now.\n",
          );
        }
      }),
    );

  withDatabaseFlags(keys.command("list").description("list keys (never the keys themselves)"))
    .option("--json", "machine-readable output")
    .action((options: { json?: boolean }, command: Command) =>
      withKeyStore(command, async (database) => {
        const list = await listApiKeys(database.sql);
        if (options.json) console.log(JSON.stringify(list.map(listed)));
        else if (list.length === 0) console.log("no API keys");
        else for (const k of list) console.log(line(k));
      }),
    );

  withDatabaseFlags(keys.command("revoke").description("revoke a key by its id or prefix (every instance refuses it within seconds)"))
    .argument("<id>", "the key's id or prefix")
    .option("--json", "machine-readable output")
    .action((id: string, options: { json?: boolean }, command: Command) =>
      withKeyStore(command, async (database) => {
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

function usage(message: string): never {
  process.stderr.write(`messaging: ${message}\n`);
  process.exit(EXIT.usage);
}

/** Opens the database the command's flags name: the embedded one is migrated, PostgreSQL must be current. */
async function withKeyStore(command: Command, work: (database: DatabaseHandle) => Promise<void>): Promise<void> {
  try {
    const config = await configFor(command);
    const [{ openDatabase }, { isCurrent, MigrationError, migrateUp, migrationStatus }] = await Promise.all([
      import("../../src/db/client.ts"),
      import("../../src/db/migrate.ts"),
    ]);
    const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
    try {
      if (database.kind === "embedded") await migrateUp(database.db);
      else if (!isCurrent(await migrationStatus(database.db))) {
        throw new MigrationError(`${database.describe} has pending migrations; run \`messaging migrate up\` first`);
      }
      await work(database);
    } finally {
      await database.close();
    }
    process.exit(EXIT.ok);
  } catch (err) {
    fail(err);
  }
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function listed(k: ApiKeyRecord) {
  return {
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
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
    `created ${k.createdAt.toISOString()}`,
    `last used ${k.lastUsedAt?.toISOString() ?? "never"}`,
    `expires ${k.expiresAt?.toISOString() ?? "never"}`,
  ].join("  ");
}
