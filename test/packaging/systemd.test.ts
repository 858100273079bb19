// packaging/messaging.service: the hardening the operator guide promises, checked by reading the unit, and by
// systemd's own `systemd-analyze verify` and offline `security` review where systemd-analyze is installed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SETTINGS } from "../../src/config/settings.ts";
import { BINARY, ensureBinary } from "../helpers/binary.ts";

const UNIT_PATH = join(import.meta.dir, "..", "..", "packaging", "messaging.service");
const UNIT = readFileSync(UNIT_PATH, "utf8");
const INSTALLED_BINARY = "/usr/local/bin/messaging";
const ANALYZE = Bun.which("systemd-analyze");

/** Section → key → every value, in order (a key may repeat, e.g. Environment=). Comments and blank lines dropped. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1] as string, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (!current || eq < 1) throw new Error(`not a unit line: ${raw}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

const unit = parseUnit(UNIT);
const service = unit.get("Service") ?? new Map<string, string[]>();
/** The value in force: systemd applies the last assignment. */
const last = (key: string) => service.get(key)?.at(-1);
const yes = (value: string | undefined) => ["yes", "true", "on", "1"].includes(value ?? "");
const envName = (key: string) => SETTINGS.find((s) => s.key === key)?.env;

describe("the unit's rules, read from the file", () => {
  test("runs the installed binary: `check` before `serve`, restarted on failure", () => {
    expect(last("ExecStartPre")).toBe(`${INSTALLED_BINARY} check`);
    expect(last("ExecStart")).toBe(`${INSTALLED_BINARY} serve`);
    expect(last("Restart")).toBe("on-failure");
    expect(unit.get("Install")?.get("WantedBy")).toEqual(["multi-user.target"]);
  });

  test("runs as a dedicated, unprivileged user", () => {
    const dedicated = yes(last("DynamicUser")) || (last("User") !== undefined && !["root", "0"].includes(last("User") as string));
    expect(dedicated).toBe(true);
    expect(yes(last("NoNewPrivileges"))).toBe(true);
    expect(last("CapabilityBoundingSet")).toBe("");
  });

  test("sees the file system read-only except its own state directory, without /home or a shared /tmp", () => {
    expect(last("ProtectSystem")).toBe("strict");
    expect(yes(last("ProtectHome"))).toBe(true);
    expect(yes(last("PrivateTmp"))).toBe(true);
    expect(last("StateDirectory")).toBe("messaging");
  });

  test("points the embedded database at the state directory, by the data-dir setting's real name", () => {
    const name = envName("dataDir");
    expect(name).toBe("MESSAGING_DATA_DIR");
    const env = (service.get("Environment") ?? []).flatMap((v) => v.split(/\s+/));
    // %S is /var/lib for a system unit: the state directory StateDirectory=messaging creates.
    expect(env).toContain(`${name}=%S/${last("StateDirectory")}`);
    for (const assignment of env) {
      const variable = assignment.split("=")[0];
      expect(SETTINGS.some((s) => s.env === variable)).toBe(true);
    }
  });

  test("reads secrets from an optional environment file, not from the unit", () => {
    expect(service.get("EnvironmentFile")).toEqual(["-/etc/messaging/messaging.env"]);
    expect(UNIT).not.toMatch(/DATABASE_URL=|SECRETS=/);
  });

  test("keeps MemoryDenyWriteExecute off: the JIT needs writable executable memory", () => {
    expect(yes(last("MemoryDenyWriteExecute"))).toBe(false);
  });
});

describe.skipIf(!ANALYZE)("systemd-analyze, where installed (Debian: apt-get install systemd)", () => {
  let dir: string;
  let unitCopy: string;
  beforeAll(async () => {
    await ensureBinary();
    dir = mkdtempSync(join(tmpdir(), "msg-test-systemd-"));
    // verify insists the ExecStart binaries exist; here that is the freshly built one instead of /usr/local/bin.
    unitCopy = join(dir, "messaging.service");
    writeFileSync(unitCopy, UNIT.replaceAll(INSTALLED_BINARY, BINARY));
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("verify accepts the unit without a single warning (an unknown key or bad value is only a warning)", () => {
    const r = Bun.spawnSync([ANALYZE as string, "verify", "--man=no", unitCopy], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
  });

  test("the offline security review rates its exposure at most 2.0 (of 10)", () => {
    const r = Bun.spawnSync([ANALYZE as string, "security", "--offline=true", "--threshold=20", "--no-pager", unitCopy], { cwd: dir, stdout: "pipe", stderr: "pipe" });
    const exposure = /Overall exposure level for messaging\.service: (\d+\.\d+)/.exec(r.stdout.toString());
    expect(exposure).not.toBeNull();
    expect(Number(exposure?.[1])).toBeLessThanOrEqual(2.0);
    expect(r.exitCode).toBe(0);
  });
});
