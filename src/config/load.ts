import { readFileSync } from "node:fs";
import { z } from "zod";
import { OperatorError } from "../operator-error.ts";
import { CHANNELS, type Channel } from "../domain/channel.ts";
import { PROVIDER_NAME, type Routes } from "../domain/provider-routes.ts";
import { type Config, type FlatConfig, type ProviderSource, SETTINGS, type SettingSpec, fileKey } from "./settings.ts";

/** A setting that could not be accepted; `message` is the one line printed before exiting with code 2. */
export class ConfigError extends OperatorError {
  override name = "ConfigError";
}

/** Where the raw settings come from, highest precedence first: flags, environment, config file. */
export interface ConfigSources {
  /** Parsed command-line flags keyed by setting key (commander's camelCase option names). */
  flags?: Record<string, unknown>;
  env?: Record<string, string | undefined>;
  /** Path of a JSON or TOML config file (`--config`, or `MESSAGING_CONFIG`). */
  configFile?: string;
}

/** The single schema of the whole configuration, built from the settings table. */
export const configSchema = z.object(
  Object.fromEntries(
    (SETTINGS as readonly SettingSpec[]).map((s) => [s.key, s.default === undefined ? s.schema : s.schema.default(s.default)]),
  ),
);

/** The structured keys of the config file (read by src/providers/config.ts), beside the flat settings. */
const PROVIDER_FILE_KEYS = ["providers", "routes"];

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`config file ${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  let parsed: unknown;
  try {
    parsed = /\.toml$/i.test(path) ? Bun.TOML.parse(text) : JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path}: not valid ${/\.toml$/i.test(path) ? "TOML" : "JSON"} (${(err as Error).message})`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path}: must hold an object of settings`);
  }
  const known = new Set([...SETTINGS.map((s) => fileKey(s.key)), ...PROVIDER_FILE_KEYS]);
  for (const key of Object.keys(parsed)) {
    if (!known.has(key)) throw new ConfigError(`config file ${path}: unknown setting "${key}"`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * Builds the typed configuration: flags > environment > config file > defaults.
 * Throws ConfigError naming the first bad setting, where it came from, what is wrong and what is accepted.
 */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? {};
  const flags = sources.flags ?? {};
  const path = sources.configFile ?? (env.MESSAGING_CONFIG || undefined);
  const file = path ? readConfigFile(path) : {};

  const raw: Record<string, unknown> = {};
  const origin: Record<string, string> = {};
  const inFile = new Set<string>();
  for (const s of SETTINGS as readonly SettingSpec[]) {
    const fromFlag = flags[s.key];
    const fromEnv = env[s.env];
    const fromFile = file[fileKey(s.key)];
    if (fromFlag !== undefined) {
      raw[s.key] = fromFlag;
      origin[s.key] = s.flag ?? `--${s.key}`;
    } else if (fromEnv !== undefined && fromEnv !== "") {
      raw[s.key] = fromEnv;
      origin[s.key] = s.env;
    } else if (fromFile !== undefined) {
      raw[s.key] = fromFile;
      origin[s.key] = fileKey(s.key);
      inFile.add(s.key);
    }
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0]);
    const spec = (SETTINGS as readonly SettingSpec[]).find((s) => s.key === key)!;
    const where = origin[key] ?? spec.env;
    const shown = spec.secret ? "<redacted>" : JSON.stringify(raw[key]);
    const inPath = inFile.has(key) ? ` (in ${path})` : "";
    throw new ConfigError(`invalid setting ${where}=${shown}${inPath}: ${issue.message}`);
  }
  const flat = result.data as FlatConfig;
  const routes = fileRoutes(file.routes, path);
  if (routes !== undefined && origin.deliveryRoutes === fileKey("deliveryRoutes")) {
    throw new ConfigError(`config file ${path}: routes and delivery_routes are both set; keep one`);
  }
  // The file's `routes` is the file form of MESSAGING_DELIVERY_ROUTES, so a flag or the environment still wins.
  const deliveryRoutes = routes !== undefined && origin.deliveryRoutes === undefined ? routes : flat.deliveryRoutes;
  if (origin.masterKeys !== undefined && origin.masterKeysFile !== undefined) {
    throw new ConfigError(`${origin.masterKeys} and ${origin.masterKeysFile} are both set; keep one`);
  }
  const providerSource: ProviderSource = { entries: file.providers, where: `config file ${path}`, routesWhere: origin.deliveryRoutes ?? `config file ${path}` };
  return { ...flat, deliveryRoutes, providerSource };
}

const routesSchema = z.strictObject(
  Object.fromEntries(CHANNELS.map((c) => [c, z.array(z.string().regex(PROVIDER_NAME, "is not a provider name")).min(1, "needs at least one provider")])) as Record<
    Channel,
    z.ZodArray<z.ZodString>
  >,
);

/** The file's `routes` (absent: undefined). Which providers the names mean is src/providers/config.ts's to check. */
function fileRoutes(raw: unknown, path: string | undefined): Routes | undefined {
  if (raw === undefined) return undefined;
  const routes = routesSchema.safeParse(raw);
  if (routes.success) return routes.data;
  const issue = routes.error.issues[0]!;
  throw new ConfigError(`config file ${path}: routes.${issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message}`);
}
