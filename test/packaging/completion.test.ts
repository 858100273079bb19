// `messaging completion bash|zsh|fish`: the scripts parse in their shell, name every command `--help` lists,
// and (bash and fish, which can be driven without a terminal) complete the right words.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { completionScript } from "../../cli/commands/completion.ts";
import { processEnv } from "../../src/config/index.ts";
import { ensureBinary, runBinary } from "../helpers/binary.ts";

type Shell = "bash" | "zsh" | "fish";
const SHELLS: Shell[] = ["bash", "zsh", "fish"];
let dir: string;
const scripts: Record<string, string> = {};
/** Every command path `--help` shows, found by asking each command with subcommands for its own help. */
let commandPaths: string[][] = [];

function listedCommands(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1] ?? "";
  return [...section.matchAll(/^ {2}([a-z][\w-]*)/gm)].map((m) => m[1] as string).filter((name) => name !== "help");
}

async function walk(path: string[]): Promise<void> {
  const r = await runBinary([...path, "--help"], { cwd: dir });
  expect(r.exitCode).toBe(0);
  for (const name of listedCommands(r.stdout)) {
    commandPaths.push([...path, name]);
    await walk([...path, name]);
  }
}

function which(shell: string): boolean {
  return Bun.which(shell) !== null;
}

/** Runs `body` in `shell` with `script` sourced first; resolves its stdout. */
function inShell(shell: "bash" | "fish", script: string, body: string): string {
  const file = join(dir, `completion.${shell}`);
  writeFileSync(file, script);
  const proc = Bun.spawnSync([shell, "-c", `source ${file}\n${body}`], { stderr: "pipe", env: { PATH: processEnv().PATH ?? "/usr/bin:/bin", HOME: dir } });
  if (proc.exitCode !== 0) throw new Error(`${shell} failed: ${proc.stderr.toString()}`);
  return proc.stdout.toString();
}

/** What the bash completion offers for the words typed so far (the last one being completed). */
function bashComplete(script: string, words: string[]): string[] {
  const array = words.map((w) => `'${w}'`).join(" ");
  const out = inShell("bash", script, `COMP_WORDS=(${array}); COMP_CWORD=${words.length - 1}; _messaging_completion; printf '%s\\n' "\${COMPREPLY[@]}"`);
  return out.split("\n").filter(Boolean);
}

function fishComplete(script: string, line: string): string[] {
  return inShell("fish", script, `complete -C '${line}'`)
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split("\t")[0] as string);
}

beforeAll(async () => {
  await ensureBinary();
  dir = mkdtempSync(join(tmpdir(), "msg-test-completion-"));
  commandPaths = [];
  await walk([]);
  for (const shell of SHELLS) {
    const r = await runBinary(["completion", shell], { cwd: dir });
    expect(r.exitCode).toBe(0);
    scripts[shell] = r.stdout;
  }
}, 180_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("messaging completion", () => {
  test("the help walk finds the commands, nested ones included", () => {
    const names = commandPaths.map((p) => p.join(" "));
    for (const expected of ["serve", "migrate", "check", "keys", "keys create", "webhooks sign", "completion"]) expect(names).toContain(expected);
  });

  test.each(SHELLS)("the %s script names every command --help lists", (shell) => {
    const script = scripts[shell] ?? "";
    expect(script.length).toBeGreaterThan(200);
    for (const path of commandPaths) {
      // As a word to offer, and as a command path the script recognises on the line.
      expect(script).toMatch(new RegExp(`[\\s'(]${path.at(-1)}[\\s':]`));
      expect(script).toContain(`'messaging ${path.join(" ")}'`);
    }
  });

  test("bash -n accepts the bash script", () => {
    const proc = Bun.spawnSync(["bash", "-n"], { stdin: Buffer.from(scripts.bash ?? ""), stderr: "pipe" });
    expect(proc.stderr.toString()).toBe("");
    expect(proc.exitCode).toBe(0);
  });

  test.skipIf(!which("zsh"))("zsh -n accepts the zsh script (skipped when zsh is not installed)", () => {
    const proc = Bun.spawnSync(["zsh", "-n"], { stdin: Buffer.from(scripts.zsh ?? ""), stderr: "pipe" });
    expect(proc.stderr.toString()).toBe("");
    expect(proc.exitCode).toBe(0);
    expect(scripts.zsh).toStartWith("#compdef messaging\n");
  });

  test.skipIf(!which("fish"))("fish -n accepts the fish script (skipped when fish is not installed)", () => {
    const proc = Bun.spawnSync(["fish", "--no-execute"], { stdin: Buffer.from(scripts.fish ?? ""), stderr: "pipe" });
    expect(proc.stderr.toString()).toBe("");
    expect(proc.exitCode).toBe(0);
  });

  test("bash completes commands, subcommands past a global option, argument choices and options", () => {
    const script = scripts.bash ?? "";
    expect(bashComplete(script, ["messaging", "ke"])).toEqual(["keys"]);
    expect(bashComplete(script, ["messaging", "--config", "m.json", "keys", "cr"])).toEqual(["create"]);
    expect(bashComplete(script, ["messaging", "completion", ""])).toEqual(expect.arrayContaining(["bash", "zsh", "fish"]));
    expect(bashComplete(script, ["messaging", "serve", "--po"])).toEqual(["--port"]);
    // After an option that takes a value, bash's default (file names) completes instead of our words.
    expect(bashComplete(script, ["messaging", "serve", "--data-dir", ""])).toEqual([]);
  });

  test.skipIf(!which("fish"))("fish completes subcommands and options of the command being typed", () => {
    const script = scripts.fish ?? "";
    expect(fishComplete(script, "messaging keys ").sort()).toEqual(["create", "help", "list", "revoke", "update"]);
    expect(fishComplete(script, "messaging serve --po")).toEqual(["--port"]);
  });

  test("completion without a known shell is a usage error", async () => {
    const r = await runBinary(["completion", "powershell"], { cwd: dir });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("powershell");
  });
});

describe("the generator on a program of its own", () => {
  const program = new Command("messaging");
  program.option("--config <path>", "config file");
  const group = program.command("things").description("it's a group");
  group.command("add").description("add one").option("--label <text>", "a label with 'quotes'");
  program.command("hidden-one", { hidden: true });

  test.each(SHELLS)("a command added to the program appears in the %s script, a hidden one does not, and quotes survive", (shell) => {
    const script = completionScript(program, shell);
    expect(script).toContain("add");
    expect(script).not.toContain("hidden-one");
    if (shell === "bash") {
      expect(bashComplete(script, ["messaging", "things", "a"])).toEqual(["add"]);
      expect(bashComplete(script, ["messaging", "things", "add", "--l"])).toEqual(["--label"]);
    }
    if (shell === "fish" && which("fish")) expect(fishComplete(script, "messaging things ")).toContain("add");
    const check = shell === "fish" ? ["fish", "--no-execute"] : [shell, "-n"];
    if (which(shell)) expect(Bun.spawnSync(check, { stdin: Buffer.from(script) }).exitCode).toBe(0);
  });
});
