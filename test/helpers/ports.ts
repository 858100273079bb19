import { createServer } from "node:net";

/**
 * A loopback port nothing listens on right now: bound to port 0, then closed. For a server that must be told its
 * port before it starts, or for a peer that refuses connections (another process may take it meanwhile, which on
 * loopback in a test run does not happen in practice).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
