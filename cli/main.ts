#!/usr/bin/env bun
import { VERSION } from "../src/version.ts";

/**
 * The `messaging` executable: the API server and the admin commands in one program (cli/program.ts).
 * `messaging --version` alone is answered before anything else loads: commander and the Node built-ins it
 * needs take longer to load than the whole answer (scripts and health checks call it often).
 */
const [flag, ...rest] = process.argv.slice(2);
if ((flag === "--version" || flag === "-V") && rest.length === 0) {
  console.log(VERSION);
  process.exit(0);
}
const { createProgram } = await import("./program.ts");
await createProgram().parseAsync(process.argv);
