export { type Config, type ProviderSource, SETTINGS, fileKey } from "./settings.ts";
export { ConfigError, type ConfigSources, configSchema, loadConfig } from "./load.ts";
export { settingsTable } from "./describe.ts";

/** The process environment, read here and only here (STYLE: no process.env outside src/config). */
export const processEnv = (): Record<string, string | undefined> => process.env;
