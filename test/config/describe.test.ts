import { describe, expect, test } from "bun:test";
import { describeConfig, loadConfig, redactUrl, SETTINGS, settingsTable } from "../../src/config/index.ts";

describe("describeConfig (what `check` prints)", () => {
  test("lists every setting by key, with unset optional ones as null, and the providers", () => {
    const described = describeConfig(loadConfig({}));
    expect(Object.keys(described).sort()).toEqual([...SETTINGS.map((s) => s.key), "providers"].sort());
    expect(described.providers).toEqual([]);
    expect(described.databaseUrl).toBeNull();
    expect(described.port).toBe(8080);
  });

  test("keeps the database URL's shape but never its password", () => {
    const described = describeConfig(loadConfig({ env: { DATABASE_URL: "postgres://app:hunter2@db.internal:5433/messaging" } }));
    expect(described.databaseUrl).toBe("postgres://app:***@db.internal:5433/messaging");
    expect(JSON.stringify(described)).not.toContain("hunter2");
  });
});

describe("redactUrl", () => {
  test.each([
    ["postgres://u:pw@h/db", "postgres://u:***@h/db"],
    ["postgres://u@h/db", "postgres://u@h/db"],
    ["not a url with a pw", "<redacted>"],
  ])("%s → %s", (input, output) => {
    expect(redactUrl(input)).toBe(output);
  });
});

describe("settingsTable", () => {
  test("has a header, a separator and one row per setting naming its environment variable", () => {
    const lines = settingsTable().split("\n");
    expect(lines).toHaveLength(SETTINGS.length + 2);
    SETTINGS.forEach((s, i) => expect(lines[i + 2]).toStartWith(`| \`${s.env}\` |`));
  });
});
