import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ConfigError, type ConfigSources, loadConfig, SETTINGS } from "../../src/config/index.ts";
import { configFiles } from "../helpers/config-files.ts";

// Created at load time: some test tables below write their files while the tests are being collected.
const files = configFiles("msg-test-config-");
afterAll(files.remove);
const configFile = files.write;
const dir = files.dir;

/** The ConfigError message loadConfig throws for these sources (fails the test if it does not throw one). */
function errorOf(sources: ConfigSources): string {
  try {
    loadConfig(sources);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("loadConfig accepted the sources");
}

describe("defaults", () => {
  const config = loadConfig({}) as Record<string, unknown>;
  test.each(SETTINGS.map((s) => [s.env, s]))("%s takes its documented default when nothing sets it", (_env, spec) => {
    expect(config[spec.key]).toEqual("default" in spec ? spec.default : undefined);
  });

  test("the older service's defaults hold: port 8080 on 0.0.0.0, /healthz, log level info, embedded ./messaging-data", () => {
    expect(config).toMatchObject({ port: 8080, host: "0.0.0.0", healthPath: "/healthz", logLevel: "info", dataDir: "./messaging-data" });
    expect(config.databaseUrl).toBeUndefined();
  });
});

describe("precedence: flags > environment > config file > defaults", () => {
  // port is settable from all four places; each row removes the highest source present in the row above.
  test.each([
    ["a flag beats the environment and the file", { port: 3333 }, { PORT: "2222" }, { port: 1111 }, 3333],
    ["the environment beats the file", {}, { PORT: "2222" }, { port: 1111 }, 2222],
    ["the file beats the default", {}, {}, { port: 1111 }, 1111],
    ["the default applies when no source sets it", {}, {}, {}, 8080],
    ["an empty environment variable counts as unset", {}, { PORT: "" }, { port: 1111 }, 1111],
  ])("%s", (_case, flags, env, file, expected) => {
    const config = loadConfig({ flags, env, configFile: configFile("json", file) });
    expect(config.port).toBe(expected);
  });

  test("each setting is resolved on its own: a flag for one does not hide the environment for another", () => {
    const config = loadConfig({
      flags: { port: 3333 },
      env: { LOG_LEVEL: "warn" },
      configFile: configFile("json", { port: 1111, log_level: "error", snippet_length: 32 }),
    });
    expect(config).toMatchObject({ port: 3333, logLevel: "warn", snippetLength: 32 });
  });

  test("MESSAGING_CONFIG names the config file when --config is absent", () => {
    const path = configFile("json", { port: 4444 });
    expect(loadConfig({ env: { MESSAGING_CONFIG: path } }).port).toBe(4444);
  });

  test("--config wins over MESSAGING_CONFIG", () => {
    const env = { MESSAGING_CONFIG: configFile("json", { port: 4444 }) };
    expect(loadConfig({ env, configFile: configFile("json", { port: 5555 }) }).port).toBe(5555);
  });
});

describe("config files", () => {
  const expected = {
    port: 9001,
    logLevel: "warn",
    securityHeadersEnabled: false,
    trustedProxies: ["10.0.0.1", "10.0.0.2"],
    databaseUrl: "postgres://app@db.internal:5432/messaging",
    maxBodyBytes: 65536,
  };
  test.each([
    [
      "JSON",
      configFile("json", {
        port: 9001,
        log_level: "warn",
        security_headers_enabled: false,
        trusted_proxies: ["10.0.0.1", "10.0.0.2"],
        database_url: "postgres://app@db.internal:5432/messaging",
        max_body_bytes: 65536,
      }),
    ],
    [
      "TOML",
      configFile(
        "toml",
        [
          "port = 9001",
          'log_level = "warn"',
          "security_headers_enabled = false",
          'trusted_proxies = ["10.0.0.1", "10.0.0.2"]',
          'database_url = "postgres://app@db.internal:5432/messaging"',
          "max_body_bytes = 65536",
        ].join("\n"),
      ),
    ],
  ])("a %s file with snake_case keys sets the typed configuration", (_format, path) => {
    expect(loadConfig({ configFile: path })).toMatchObject(expected);
  });

  test("file values may also be strings, parsed like environment values", () => {
    const config = loadConfig({ configFile: configFile("json", { port: "9002", security_headers_enabled: "off", trusted_proxies: "10.0.0.1, fd00::/8" }) });
    expect(config).toMatchObject({ port: 9002, securityHeadersEnabled: false, trustedProxies: ["10.0.0.1", "fd00::/8"] });
  });

  test.each([
    ["an unknown key", { prot: 8080 }, /^config file .*: unknown setting "prot"$/],
    ["a camelCase key (file keys are snake_case)", { logLevel: "warn" }, /unknown setting "logLevel"/],
    ["an environment-variable name", { PORT: 8080 }, /unknown setting "PORT"/],
  ])("%s is refused, naming the key", (_case, content, message) => {
    expect(errorOf({ configFile: configFile("json", content) })).toMatch(message);
  });

  test.each([
    ["malformed JSON", "json", '{"port": 8080,}', /^config file .*\.json: not valid JSON/],
    ["malformed TOML", "toml", "port = = 1", /^config file .*\.toml: not valid TOML/],
    ["a JSON array", "json", "[1, 2]", /must hold an object of settings/],
    ["a JSON string", "json", '"port=1"', /must hold an object of settings/],
  ] as const)("%s is refused with one line naming the file", (_case, ext, text, message) => {
    const error = errorOf({ configFile: configFile(ext, text) });
    expect(error).toMatch(message);
    expect(error).not.toContain("\n");
  });

  test("a file that cannot be read is refused, naming the path", () => {
    expect(errorOf({ configFile: join(dir, "missing.json") })).toBe(`config file ${join(dir, "missing.json")}: cannot be read (ENOENT)`);
  });
});

describe("values that parse", () => {
  test.each([
    ["PORT", " 8081 ", "port", 8081],
    ["PORT", "+8082", "port", 8082],
    ["PORT", "0", "port", 0],
    ["LOG_LEVEL", "WARN", "logLevel", "warn"],
    ["SECURITY_HEADERS_ENABLED", "off", "securityHeadersEnabled", false],
    ["SECURITY_HEADERS_ENABLED", "YES", "securityHeadersEnabled", true],
    ["SECURITY_HEADERS_ENABLED", "0", "securityHeadersEnabled", false],
    ["MESSAGING_HSTS", "true", "hsts", true],
    ["MESSAGING_AUTH", "On", "auth", "on"],
    ["SSRF_ALLOWLIST", "api.twilio.com, ,api.sendgrid.com", "ssrfAllowlist", ["api.twilio.com", "api.sendgrid.com"]],
    ["DATABASE_URL", "postgresql://u@h/db", "databaseUrl", "postgresql://u@h/db"],
    ["MESSAGING_PUBLIC_URL", "https://msg.example.com", "publicUrl", "https://msg.example.com"],
    ["API_PROVIDER_SEED", "42", "providerSeed", 42],
    ["API_MAX_BODY_BYTES", "1024", "maxBodyBytes", 1024],
  ])("%s=%p gives %s = %p", (env, value, key, expected) => {
    expect((loadConfig({ env: { [env]: value } }) as Record<string, unknown>)[key]).toEqual(expected);
  });
});

describe("invalid values stop with one line naming the setting, the problem and the range", () => {
  const INT = (min: number, max: number) => `must be an integer from ${min} to ${max}`;
  test.each<[string, () => ConfigSources, string, string]>([
    ["PORT=abc", () => ({ env: { PORT: "abc" } }), 'PORT="abc"', INT(0, 65535)],
    ["PORT above the range", () => ({ env: { PORT: "70000" } }), 'PORT="70000"', INT(0, 65535)],
    ["PORT negative", () => ({ env: { PORT: "-1" } }), 'PORT="-1"', INT(0, 65535)],
    ["PORT fractional", () => ({ env: { PORT: "80.5" } }), 'PORT="80.5"', INT(0, 65535)],
    ["PORT blank (not silently 0)", () => ({ env: { PORT: " " } }), 'PORT=" "', INT(0, 65535)],
    ["PORT in hex", () => ({ env: { PORT: "0x50" } }), 'PORT="0x50"', INT(0, 65535)],
    ["PORT in exponent form", () => ({ env: { PORT: "8e3" } }), 'PORT="8e3"', INT(0, 65535)],
    ["LOG_LEVEL unknown", () => ({ env: { LOG_LEVEL: "loud" } }), 'LOG_LEVEL="loud"', "must be one of trace, debug, info, warn, error, fatal, silent"],
    ["HEALTH_PATH relative", () => ({ env: { HEALTH_PATH: "healthz" } }), 'HEALTH_PATH="healthz"', "must be an absolute URL path"],
    ["MESSAGING_AUTH unknown", () => ({ env: { MESSAGING_AUTH: "maybe" } }), 'MESSAGING_AUTH="maybe"', "must be one of on, off"],
    ["SECURITY_HEADERS_ENABLED not a boolean", () => ({ env: { SECURITY_HEADERS_ENABLED: "sometimes" } }), 'SECURITY_HEADERS_ENABLED="sometimes"', "must be a boolean (true/false, 1/0, yes/no, on/off)"],
    ["CONVERSATION_SNIPPET_LENGTH zero", () => ({ env: { CONVERSATION_SNIPPET_LENGTH: "0" } }), 'CONVERSATION_SNIPPET_LENGTH="0"', INT(1, 4096)],
    ["API_MAX_BODY_BYTES too small", () => ({ env: { API_MAX_BODY_BYTES: "100" } }), 'API_MAX_BODY_BYTES="100"', INT(1024, 64 * 1024 * 1024)],
    ["API_PROVIDER_ERROR_PCT above 100", () => ({ env: { API_PROVIDER_ERROR_PCT: "101" } }), 'API_PROVIDER_ERROR_PCT="101"', INT(0, 100)],
    ["MESSAGING_IDEMPOTENCY_TTL_HOURS below a day", () => ({ env: { MESSAGING_IDEMPOTENCY_TTL_HOURS: "1" } }), 'MESSAGING_IDEMPOTENCY_TTL_HOURS="1"', INT(24, 720)],
    ["MESSAGING_DB_POOL_SIZE zero", () => ({ env: { MESSAGING_DB_POOL_SIZE: "0" } }), 'MESSAGING_DB_POOL_SIZE="0"', INT(1, 500)],
    ["MESSAGING_PUBLIC_URL not http", () => ({ env: { MESSAGING_PUBLIC_URL: "ftp://x" } }), 'MESSAGING_PUBLIC_URL="ftp://x"', "must be an absolute http or https URL"],
    ["MESSAGING_DATA_DIR blank", () => ({ env: { MESSAGING_DATA_DIR: "  " } }), 'MESSAGING_DATA_DIR="  "', "must be a non-empty path"],
    ["--port flag", () => ({ flags: { port: "abc" }, env: { PORT: "8080" } }), '--port="abc"', INT(0, 65535)],
    ["--log-level flag", () => ({ flags: { logLevel: "loud" } }), '--log-level="loud"', "must be one of"],
    ["--data-dir flag", () => ({ flags: { dataDir: "" } }), '--data-dir=""', "must be a non-empty path"],
    ["port in a JSON file", () => ({ configFile: configFile("json", { port: 99999 }) }), "port=99999", INT(0, 65535)],
    ["snippet_length in a JSON file", () => ({ configFile: configFile("json", { snippet_length: 5000 }) }), "snippet_length=5000", INT(1, 4096)],
    ["log_level in a TOML file", () => ({ configFile: configFile("toml", 'log_level = "loud"') }), 'log_level="loud"', "must be one of"],
    ["security_headers_enabled in a TOML file", () => ({ configFile: configFile("toml", "security_headers_enabled = 3") }), "security_headers_enabled=3", "must be a boolean"],
  ])("%s is refused", (_case, sources, named, problem) => {
    const s = sources();
    const message = errorOf(s);
    expect(message).not.toContain("\n");
    expect(message).toStartWith(`invalid setting ${named}`);
    expect(message).toContain(problem);
    if (s.configFile) expect(message).toContain(`(in ${s.configFile})`);
  });
});

describe("secrets are never echoed", () => {
  const password = "hunter2-very-secret";
  test.each<[string, () => ConfigSources]>([
    ["from the environment", () => ({ env: { DATABASE_URL: `mysql://app:${password}@db/messaging` } })],
    ["from a flag", () => ({ flags: { databaseUrl: `postgres://app:${password}@db:notaport/messaging` } })],
    ["from a config file", () => ({ configFile: configFile("json", { database_url: `http://app:${password}@db/messaging` }) })],
  ])("an invalid DATABASE_URL %s is reported as <redacted>", (_case, sources) => {
    const message = errorOf(sources());
    expect(message).toMatch(/^invalid setting (DATABASE_URL|--database-url|database_url)=<redacted>/);
    expect(message).toContain("must be a postgres:// or postgresql:// URL");
    expect(message).not.toContain(password);
    expect(message).not.toContain("app:");
  });
});
