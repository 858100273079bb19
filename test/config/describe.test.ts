import { describe, expect, test } from "bun:test";
import { SETTINGS, settingsTable } from "../../src/config/index.ts";

describe("settingsTable", () => {
  test("has a header, a separator and one row per setting naming its environment variable", () => {
    const lines = settingsTable().split("\n");
    expect(lines).toHaveLength(SETTINGS.length + 2);
    SETTINGS.forEach((s, i) => expect(lines[i + 2]).toStartWith(`| \`${s.env}\` |`));
  });
});
