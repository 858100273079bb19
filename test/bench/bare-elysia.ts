/**
 * The floor the service's /healthz is compared with in healthz.sh: one Elysia route on the same Bun, with no
 * plugins, logging or metrics. Usage: bun test/bench/bare-elysia.ts PORT
 */
import { Elysia } from "elysia";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) throw new Error("usage: bun test/bench/bare-elysia.ts PORT");
new Elysia().get("/healthz", () => ({ status: "ok" })).listen({ port, hostname: "127.0.0.1" });
