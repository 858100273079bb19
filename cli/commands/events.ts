import type { Command } from "commander";
import { withMigratedDatabase } from "../database.ts";
import { EXIT } from "../exit.ts";
import { withDatabaseFlags } from "../options.ts";

/**
 * `messaging events endpoints add | list | remove | rotate-secret | enable`: the event endpoints of SPEC §10 for
 * admins at the machine, as the admin-scope routes offer them over HTTP. A secret is printed once, on stdout, as
 * `keys create` prints a key. The work is in src/events/endpoints.ts, loaded when a command runs.
 */
export function eventsCommand(program: Command): void {
  const events = program.command("events").description("events to the client app (endpoints)");
  const endpoints = events.command("endpoints").description("manage event endpoints (add | list | remove | rotate-secret | enable)");

  withDatabaseFlags(endpoints.command("add").description("register an endpoint and print its signing secret once"))
    .argument("<url>", "where events are POSTed (https; the egress guard must allow it)")
    .option("--events <types>", "comma-separated event types, message.status, or *", "*")
    .option("--description <text>", "what the endpoint is for")
    .option("--json", "machine-readable output")
    .action((url: string, options: { events: string; description?: string; json?: boolean }, command: Command) =>
      withMigratedDatabase(command, async (database, config) => {
        const [{ createEndpoint, EndpointError }, { eventEgress }, { masterKeysOrGenerate, configuredMasterKeys }, { isSubscriptionName }] = await Promise.all([
          import("../../src/events/endpoints.ts"),
          import("../../src/events/egress.ts"),
          import("../../src/security/master-key-source.ts"),
          import("../../src/domain/event-types.ts"),
        ]);
        const types = options.events.split(",").map((s) => s.trim()).filter(Boolean);
        const unknown = types.find((t) => !isSubscriptionName(t));
        if (types.length === 0 || unknown !== undefined) usage(`--events takes event types, message.status or * (comma-separated); "${unknown ?? ""}" is none`);
        const master = database.kind === "embedded" ? masterKeysOrGenerate(config) : configuredMasterKeys(config);
        try {
          const created = await createEndpoint({ sql: database.sql, keys: master?.keys ?? [], egress: eventEgress(config) }, { url: url.trim(), events: types, description: options.description ?? null });
          if (options.json) console.log(JSON.stringify(created));
          else {
            console.log(created.secret);
            process.stderr.write(`messaging: endpoint ${created.id} registered for ${created.events.join(", ")} at ${created.url}. The secret above is shown this once; store it now.\n`);
          }
        } catch (err) {
          if (err instanceof EndpointError) failed(err.message);
          throw err;
        }
      }),
    );

  withDatabaseFlags(endpoints.command("list").description("list endpoints (never their secrets)"))
    .option("--json", "machine-readable output")
    .action((options: { json?: boolean }, command: Command) =>
      withMigratedDatabase(command, async (database) => {
        const { listEndpoints } = await import("../../src/events/endpoints.ts");
        const list = await listEndpoints(database.sql);
        if (options.json) console.log(JSON.stringify(list));
        else if (list.length === 0) console.log("no event endpoints");
        else
          for (const e of list) {
            const state = e.disabled_at ? `disabled since ${e.disabled_at} (${e.disabled_reason})` : e.failing_since ? `failing since ${e.failing_since}` : "active";
            console.log(`${e.id}  ${e.url}  [${e.events.join(",")}]  ${state}  pending ${e.pending}`);
          }
      }),
    );

  withDatabaseFlags(endpoints.command("remove").description("remove an endpoint with its undelivered events and its secret"))
    .argument("<id>", "the endpoint's id")
    .action((id: string, _options: unknown, command: Command) =>
      withMigratedDatabase(command, async (database) => {
        const { deleteEndpoint } = await import("../../src/events/endpoints.ts");
        if (!(await deleteEndpoint(database.sql, id.trim()))) failed(`no event endpoint has the id "${id}"`);
        console.log(`removed event endpoint ${id}`);
      }),
    );

  withDatabaseFlags(endpoints.command("rotate-secret").description("print a new signing secret once; the old one signs beside it for 24 h"))
    .argument("<id>", "the endpoint's id")
    .option("--json", "machine-readable output")
    .action((id: string, options: { json?: boolean }, command: Command) =>
      withMigratedDatabase(command, async (database, config) => {
        const [{ rotateEndpointSecret, EndpointError }, { masterKeysOrGenerate, configuredMasterKeys }] = await Promise.all([
          import("../../src/events/endpoints.ts"),
          import("../../src/security/master-key-source.ts"),
        ]);
        const master = database.kind === "embedded" ? masterKeysOrGenerate(config) : configuredMasterKeys(config);
        try {
          const rotated = await rotateEndpointSecret({ sql: database.sql, keys: master?.keys ?? [] }, id.trim());
          if (options.json) console.log(JSON.stringify(rotated));
          else {
            console.log(rotated.secret);
            process.stderr.write(`messaging: new secret for endpoint ${id}, shown this once; the previous one signs too until ${rotated.previous_secret_expires_at}.\n`);
          }
        } catch (err) {
          if (err instanceof EndpointError) failed(err.message);
          throw err;
        }
      }),
    );

  withDatabaseFlags(endpoints.command("enable").description("enable a disabled endpoint; its undelivered events are sent again"))
    .argument("<id>", "the endpoint's id")
    .action((id: string, _options: unknown, command: Command) =>
      withMigratedDatabase(command, async (database) => {
        const { enableEndpoint, EndpointError } = await import("../../src/events/endpoints.ts");
        try {
          const endpoint = await enableEndpoint(database.sql, id.trim());
          console.log(`enabled event endpoint ${endpoint.id}; ${endpoint.pending} event(s) to deliver`);
        } catch (err) {
          if (err instanceof EndpointError) failed(err.message);
          throw err;
        }
      }),
    );
}

function usage(message: string): never {
  process.stderr.write(`messaging: ${message}\n`);
  process.exit(EXIT.usage);
}

function failed(message: string): never {
  process.stderr.write(`messaging: ${message}\n`);
  process.exit(EXIT.failed);
}
