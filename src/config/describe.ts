import { type Config, SETTINGS, type SettingSpec } from "./settings.ts";

/** The configuration as `check` shows it: every setting with its value, secrets redacted. */
export function describeConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS as readonly SettingSpec[]) {
    const value = (config as Record<string, unknown>)[s.key];
    out[s.key] = s.secret && value !== undefined ? redactUrl(String(value)) : value ?? null;
  }
  return out;
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

/** Markdown table of every setting, kept in the README (a test compares the two). */
export function settingsTable(): string {
  const rows = (SETTINGS as readonly SettingSpec[]).map(
    (s) => `| \`${s.env}\` | ${s.flag ? `\`${s.flag}\`` : ""} | ${s.default === undefined ? "—" : `\`${JSON.stringify(s.default)}\``} | ${s.description} |`,
  );
  return ["| Environment | Flag | Default | Meaning |", "|---|---|---|---|", ...rows].join("\n");
}
