// packaging/Dockerfile and packaging/compose.yaml. No Docker engine runs here, and hadolint is not packaged by
// Debian, so the rules that matter are checked by reading the files (hadolint runs too where it is installed),
// and the health probe both files use is run for real against `messaging serve`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SETTINGS } from "../../src/config/settings.ts";
import { ensureBinary, type ServeProcess, startServe } from "../helpers/binary.ts";
import { copyEmbeddedTemplate } from "../helpers/database.ts";

const PACKAGING = join(import.meta.dir, "..", "..", "packaging");
const DOCKERFILE = readFileSync(join(PACKAGING, "Dockerfile"), "utf8");
const COMPOSE = Bun.YAML.parse(readFileSync(join(PACKAGING, "compose.yaml"), "utf8")) as Compose;

interface Instruction {
  op: string;
  args: string;
  stage: number;
}
interface Service {
  image?: string;
  command?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
  environment?: Record<string, string>;
  restart?: string;
  privileged?: boolean;
  user?: string;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** The Dockerfile's instructions, continuation lines joined, each tagged with its build stage (0 = before any FROM). */
function instructions(text: string): Instruction[] {
  const joined = text
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ");
  let stage = 0;
  return joined
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [op = "", ...rest] = line.split(/\s+/);
      if (op.toUpperCase() === "FROM") stage++;
      return { op: op.toUpperCase(), args: rest.join(" "), stage };
    });
}

const all = instructions(DOCKERFILE);
const finalStage = Math.max(...all.map((i) => i.stage));
const final = all.filter((i) => i.stage === finalStage);
const one = (op: string) => final.filter((i) => i.op === op);
/** ARG defaults declared before the first FROM, which FROM lines may use. */
const globalArgs = new Map(
  all.filter((i) => i.stage === 0 && i.op === "ARG").map((i) => i.args.split("=") as [string, string]),
);
/** ENV of the final stage (`A=1 B=2` form). */
const env = new Map(one("ENV").flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1] as string, m[2] as string])));
/** The HEALTHCHECK's command, from its exec-form JSON array. */
const healthcheck = JSON.parse(/CMD\s+(\[.*\])\s*$/.exec(one("HEALTHCHECK")[0]?.args ?? "")?.[1] ?? "[]") as string[];

/** An image reference with an explicit tag other than latest, optionally pinned by digest too. */
const PINNED = /^[\w./-]+:(?!latest\b)[\w.-]+(@sha256:[0-9a-f]{64})?$/;

describe("Dockerfile rules", () => {
  test("every base image has a pinned tag", () => {
    const froms = all.filter((i) => i.op === "FROM");
    expect(froms.length).toBeGreaterThan(0);
    for (const from of froms) {
      const image = (from.args.split(/\s+/)[0] as string).replace(/^\$\{(\w+)\}$/, (_, name: string) => globalArgs.get(name) ?? "");
      expect(image).toMatch(PINNED);
    }
  });

  test("fetches nothing at build time: no ADD of a URL, no curl or wget", () => {
    for (const i of all.filter((i) => i.op === "ADD")) expect(i.args).not.toMatch(/https?:\/\//);
    expect(all.filter((i) => i.op === "RUN").map((i) => i.args).join(" ")).not.toMatch(/\b(curl|wget)\b/);
  });

  test("copies a release binary only after checking it against SHA256SUMS", () => {
    const run = all.find((i) => i.op === "RUN" && i.args.includes("SHA256SUMS"));
    expect(run?.args).toMatch(/sha256sum -c/);
    expect(all.some((i) => i.op === "COPY" && i.args.startsWith("dist/release/"))).toBe(true);
  });

  test("the final stage runs as a non-root user", () => {
    const user = one("USER").at(-1)?.args;
    expect(user).toBeDefined();
    expect(user?.split(":")[0]).not.toMatch(/^(root|0)$/);
  });

  test("the data directory is a volume, the port is exposed, both by the settings' own names", () => {
    expect(SETTINGS.find((s) => s.key === "dataDir")?.env).toBe("MESSAGING_DATA_DIR");
    expect(SETTINGS.find((s) => s.key === "port")?.env).toBe("PORT");
    for (const name of env.keys()) expect(SETTINGS.some((s) => s.env === name)).toBe(true);
    expect(JSON.parse(one("VOLUME")[0]?.args ?? "[]")).toContain(env.get("MESSAGING_DATA_DIR") ?? "MESSAGING_DATA_DIR is not set");
    expect(one("EXPOSE").map((i) => i.args)).toContain(env.get("PORT") ?? "PORT is not set");
  });

  test("HEALTHCHECK probes /readyz; ENTRYPOINT and CMD are exec form (signals reach the binary)", () => {
    expect(one("HEALTHCHECK")).toHaveLength(1);
    expect(healthcheck.join(" ")).toContain("/readyz");
    expect(JSON.parse(one("ENTRYPOINT")[0]?.args ?? "null")).toEqual(["/usr/local/bin/messaging"]);
    expect(JSON.parse(one("CMD").at(-1)?.args ?? "null")).toEqual(["serve"]);
  });

  const hadolint = Bun.which("hadolint");
  test.skipIf(!hadolint)("hadolint finds nothing (skipped: hadolint is not installed, and Debian does not package it)", () => {
    const r = Bun.spawnSync([hadolint as string, join(PACKAGING, "Dockerfile")], { stdout: "pipe", stderr: "pipe" });
    expect(r.stdout.toString() + r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
  });
});

describe("compose.yaml rules", () => {
  const { postgres, migrate, messaging } = COMPOSE.services;

  test("has PostgreSQL, a one-shot migrate and serve, on pinned images", () => {
    expect(Object.keys(COMPOSE.services).sort()).toEqual(["messaging", "migrate", "postgres"]);
    for (const service of Object.values(COMPOSE.services)) {
      expect(service.image).toMatch(PINNED);
      expect(service.privileged).toBeUndefined();
    }
    expect(migrate?.command).toEqual(["migrate", "up"]);
    expect(migrate?.restart).toBe("no");
    expect(messaging?.command).toEqual(["serve"]);
  });

  test("starts in order: PostgreSQL healthy, then migrate to completion, then serve", () => {
    expect(migrate?.depends_on).toEqual({ postgres: { condition: "service_healthy" } });
    expect(messaging?.depends_on).toEqual({
      postgres: { condition: "service_healthy" },
      migrate: { condition: "service_completed_successfully" },
    });
  });

  test("PostgreSQL and serve have health checks; the one-shot has its image's turned off", () => {
    expect(postgres?.healthcheck?.test?.slice(0, 2)).toEqual(["CMD", "pg_isready"]);
    expect(messaging?.healthcheck?.test?.join(" ")).toContain("/readyz");
    expect(migrate?.healthcheck?.disable).toBe(true);
  });

  test("both messaging services reach the compose PostgreSQL with a password that must be given", () => {
    for (const service of [migrate, messaging]) {
      expect(service?.environment?.DATABASE_URL).toMatch(/^postgres:\/\/messaging:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432\/messaging$/);
    }
    expect(COMPOSE.volumes).toHaveProperty("postgres-data");
  });
});

describe("the health probe, run against the binary", () => {
  let dir: string;
  let server: ServeProcess;
  let notReady: ReturnType<typeof Bun.serve>;
  beforeAll(async () => {
    await ensureBinary();
    dir = mkdtempSync(join(tmpdir(), "msg-test-container-"));
    await copyEmbeddedTemplate(join(dir, "messaging-data"));
    server = await startServe({ cwd: dir });
    // Up but not ready: answers /readyz as serve does while its database is away.
    notReady = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response('{"code":"service_unavailable"}', { status: 503 }) });
  }, 180_000);
  afterAll(async () => {
    await server?.stop();
    notReady?.stop(true);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs a probe command (an exec-form array) on this host, as the container would, with PORT set. */
  async function probe(command: string[], port: number): Promise<number> {
    // Asynchronously: the 503 stub answers from this process's event loop.
    return Bun.spawn(command, { env: { PATH: "/usr/bin:/bin", PORT: String(port) }, timeout: 15_000 }).exited;
  }

  test("the Dockerfile's HEALTHCHECK passes against a ready serve", async () => {
    expect(await probe(healthcheck, server.port)).toBe(0);
  });

  test("it fails when /readyz answers 503 and when nothing listens", async () => {
    expect(await probe(healthcheck, Number(notReady.port))).not.toBe(0);
    const closed = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
    const port = Number(closed.port);
    closed.stop(true);
    expect(await probe(healthcheck, port)).not.toBe(0);
  });

  test("compose's serve health check, pointed at the same server, passes too", async () => {
    const command = (COMPOSE.services.messaging?.healthcheck?.test ?? []).slice(1).map((part) => part.replaceAll("8080", String(server.port)));
    expect(await probe(command, server.port)).toBe(0);
    expect(await probe(command.map((part) => part.replaceAll(String(server.port), String(notReady.port))), server.port)).not.toBe(0);
  });
});
