export { type Config, SETTINGS, fileKey } from "./settings.ts";
export { assertProvidersReady, ConfigError, type ConfigSources, configSchema, loadConfig } from "./load.ts";
export { type ProviderConfig, type ProviderKind, providersProblem } from "../providers/config.ts";
export { settingsTable } from "./describe.ts";

/** The process environment, read here and only here (STYLE: no process.env outside src/config). */
export const processEnv = (): Record<string, string | undefined> => process.env;
