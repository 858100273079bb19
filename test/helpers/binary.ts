/**
 * The compiled `dist/messaging`, run as an operator would: from a directory of its own, with only the
 * environment it is given (never the test runner's DATABASE_URL or the like).
 *
 *   await ensureBinary();
 *   const r = await runBinary(["migrate", "up"], { env: { DATABASE_URL: url } });   // { exitCode, stdout, stderr }
 *   const s = await startServe({ cwd: dir });  s.port …  await s.stop();              // SIGTERM, resolves the exit code
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { processEnv } from "../../src/config/index.ts";

const ROOT = join(import.meta.dir, "..", "..");
export const BINARY = join(ROOT, "dist", "messaging");

/** Newest modification time of the files the binary is built from. */
function newestSource(): number {
  let newest = 0;
  const visit = (path: string) => {
    const stat = statSync(path);
    if (stat.isDirectory()) for (const name of readdirSync(path)) visit(join(path, name));
    else newest = Math.max(newest, stat.mtimeMs);
  };
  for (const entry of ["src", "cli", "drizzle", "package.json", "bun.lock"]) visit(join(ROOT, entry));
  return newest;
}

/** Builds dist/messaging unless it exists and is newer than every source (`bun run test` builds it first). */
export async function ensureBinary(): Promise<void> {
  let built = 0;
  try {
    built = statSync(BINARY).mtimeMs;
  } catch {
    // not built yet
  }
  if (built > newestSource()) return;
  const proc = Bun.spawn(["bun", "run", "build"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if ((await proc.exited) !== 0) throw new Error(`bun run build failed:\n${await new Response(proc.stderr).text()}`);
}

/** The environment a binary gets: PATH and HOME only, plus what the test adds. */
function baseEnv(extra: Record<string, string>, home: string): Record<string, string> {
  return { PATH: processEnv().PATH ?? "/usr/bin:/bin", HOME: home, ...extra };
}

export interface RunOptions {
  /** Working directory; the binary must need nothing beside it (default: the OS temp dir). */
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Bytes written to the binary's stdin (default: none, stdin closed). */
  stdin?: Uint8Array;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the binary to completion. */
export async function runBinary(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const cwd = options.cwd ?? (processEnv().TMPDIR || "/tmp");
  const proc = Bun.spawn([BINARY, ...args], {
    cwd,
    env: baseEnv(options.env ?? {}, cwd),
    stdin: options.stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
    timeout: options.timeoutMs ?? 30_000,
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { exitCode, stdout, stderr };
}

export interface ServeProcess {
  port: number;
  url: string;
  pid: number;
  /** Sends the signal (SIGTERM by default) and resolves the exit code. */
  stop(signal?: "SIGTERM" | "SIGINT"): Promise<number>;
  /** Resolves the exit code once the process has exited and its output has been read, without signalling it. */
  exited(): Promise<number>;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
}

/**
 * Starts `messaging serve` on 127.0.0.1 and a free port, and resolves once its "messaging listening" log
 * line (which carries the port) appears. Rejects with the output if the process exits first. API-key auth is
 * off unless `env` sets `MESSAGING_AUTH` (the auth tests do); `unset` removes variables the defaults set, to
 * run with the service's own default.
 */
export async function startServe(options: RunOptions & { args?: string[]; unset?: string[] }): Promise<ServeProcess> {
  const cwd = options.cwd ?? (processEnv().TMPDIR || "/tmp");
  const env = baseEnv({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", MESSAGING_AUTH: "off", ...options.env }, cwd);
  for (const name of options.unset ?? []) delete env[name];
  const proc = Bun.spawn([BINARY, "serve", ...(options.args ?? [])], { cwd, env, stdout: "pipe", stderr: "pipe" });
  let out = "";
  let err = "";
  const collect = async (stream: ReadableStream<Uint8Array>, append: (s: string) => void) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) append(decoder.decode(chunk, { stream: true }));
  };
  const stdoutDone = collect(proc.stdout, (s) => (out += s));
  const stderrDone = collect(proc.stderr, (s) => (err += s));

  const deadline = Date.now() + (options.timeoutMs ?? 45_000);
  let exited = false;
  proc.exited.then(() => (exited = true));
  for (;;) {
    const port = listeningPort(out);
    if (port !== undefined) {
      return {
        port,
        url: `http://127.0.0.1:${port}`,
        pid: proc.pid,
        stop: async (signal = "SIGTERM") => {
          proc.kill(signal);
          const code = await proc.exited;
          await Promise.all([stdoutDone, stderrDone]);
          return code;
        },
        exited: async () => {
          const code = await proc.exited;
          await Promise.all([stdoutDone, stderrDone]);
          return code;
        },
        stdout: () => out,
        stderr: () => err,
      };
    }
    if (exited || Date.now() > deadline) {
      if (!exited) proc.kill("SIGKILL");
      await Promise.all([proc.exited, stdoutDone, stderrDone]);
      throw new Error(`serve did not start (exit ${proc.exitCode}):\nstdout: ${out}\nstderr: ${err}`);
    }
    await Bun.sleep(20);
  }
}

function listeningPort(stdout: string): number | undefined {
  // Complete lines only: the last piece may still be arriving.
  for (const line of stdout.split("\n").slice(0, -1)) {
    if (!line.includes('"messaging listening"')) continue;
    const parsed = JSON.parse(line) as { msg?: string; port?: number };
    if (parsed.msg === "messaging listening" && typeof parsed.port === "number") return parsed.port;
  }
  return undefined;
}

/** SIGKILLs every process of `processes` still running (an afterAll's last resort; a test stops its own cleanly). */
export function killAll(processes: readonly { pid: number }[]): void {
  for (const p of processes) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      // already exited
    }
  }
}
