import { type Config, fileKey, SETTINGS, type SettingSpec } from "./settings.ts";

/** The configuration as `check` shows it: every setting with its value, secrets redacted, and the providers (no secrets). */
export function describeConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS as readonly SettingSpec[]) {
    const value = (config as Record<string, unknown>)[s.key];
    out[s.key] = s.secret && value !== undefined ? redactSecret(value) : value ?? null;
  }
  out.providers = config.providers;
  return out;
}

/**
 * A secret setting as `check` shows it: a database URL keeps its shape without the password; anything else is
 * hidden whole (a master key list such as `k1:…` would otherwise parse as a URL with no password, and show).
 */
function redactSecret(value: unknown): string {
  return typeof value === "string" && /^postgres(ql)?:\/\//.test(value) ? redactUrl(value) : "<redacted>";
}

/** Keeps the shape of a URL but never its password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<redacted>";
  }
}

/**
 * Markdown table of every setting, kept in the README (a test compares the two). The file key has its own
 * column because it cannot be guessed from the environment name (`API_MAX_BODY_BYTES` is `max_body_bytes`).
 */
export function settingsTable(): string {
  const code = (text: string) => `\`${text}\``;
  const rows = (SETTINGS as readonly SettingSpec[]).map((s) => {
    const cells = [
      code(s.env),
      s.flag ? code(s.flag) : "",
      code(fileKey(s.key)),
      s.default === undefined ? "—" : code(JSON.stringify(s.default)),
      s.description,
    ];
    return `| ${cells.join(" | ")} |`;
  });
  return ["| Environment | Flag | File key | Default | Meaning |", "|---|---|---|---|---|", ...rows].join("\n");
}
