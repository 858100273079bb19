import { fileKey, SETTINGS, type SettingSpec } from "./settings.ts";

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
