import net from "node:net";

/**
 * A PostgreSQL connection that left a statement unanswered past its deadline and was closed. Its `code`
 * is what `isDatabaseUnavailable` (availability.ts) recognises: the caller answers 503 with Retry-After.
 */
export class DatabaseTimeoutError extends Error {
  override name = "DatabaseTimeoutError";
  readonly code = "DATABASE_TIMEOUT";
  constructor(readonly deadlineMs: number) {
    super(`PostgreSQL did not answer within ${deadlineMs} ms; the connection was closed`);
  }
}

/** What postgres.js passes to its `socket` option: the parsed connection options. */
interface SocketTarget {
  host: string[];
  port: number[];
  path?: string | false;
}

/**
 * The `socket` option of postgres.js: plain TCP sockets that close themselves, with a DatabaseTimeoutError,
 * when a statement sent on them goes unanswered for `deadlineMs`.
 *
 * Why at the socket: under a partition (packets dropped, not refused) the server's statement_timeout never
 * reaches the client, TCP keeps retransmitting for many minutes, and postgres.js has no per-query timeout
 * (`query.cancel()` needs a second connection that cannot get through either). Closing the socket rejects
 * every query waiting on it with that error, and postgres.js replaces the connection instead of handing the
 * dead one out again.
 *
 * A statement counts as answered when ReadyForQuery comes back for its Sync (or simple Query), and a Flush
 * (postgres.js describes a new parameterized statement with Parse, Describe, Flush and no Sync) when any
 * reply comes back; any byte from the server restarts the clock, so a long result streaming in is progress,
 * not a timeout. Idle connections, including those of LISTEN, are never timed: nothing is owed to them.
 */
export function deadlineSockets(deadlineMs: number): (target: SocketTarget) => net.Socket {
  return (target) => {
    const socket = target.path
      ? net.connect({ path: target.path })
      : net.connect({ host: target.host[0] ?? "localhost", port: target.port[0] ?? 5432 });
    watch(socket, deadlineMs);
    return socket;
  };
}

/** Counts the requests written and the replies read on `socket`, and times the client's wait. */
function watch(socket: net.Socket, deadlineMs: number): void {
  /** Syncs and simple Queries not yet answered by a ReadyForQuery. */
  let owed = 0;
  /** A Flush was written and nothing has been read since. */
  let flushed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expire = () => socket.destroy(new DatabaseTimeoutError(deadlineMs));
  const readyReader = readyForQueryCounter();
  let startupSent = false;

  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((chunk: unknown, ...rest: unknown[]) => {
    // The first write is the startup message, which has no type byte; the connect timeout covers it.
    if (chunk instanceof Uint8Array && startupSent) {
      const requests = countRequests(chunk);
      const waiting = owed > 0 || flushed;
      owed += requests.syncs;
      flushed ||= requests.flushes > 0;
      if (!waiting && (owed > 0 || flushed)) timer = setTimeout(expire, deadlineMs).unref();
    }
    startupSent = true;
    return write(chunk, ...rest);
  }) as typeof socket.write;

  // The server's FIN ends the connection: PostgreSQL never half-closes, and postgres.js learns of a closed
  // connection only from 'close'. Bun 1.3.14 emits 'end' but never 'close' when bytes written to the socket are
  // still queued as the FIN arrives (it stops flushing them, so the writable side never finishes; oven-sh/bun#31654,
  // "emit 'close' when a backpressured socket's peer dies"): the queries on the connection then waited for the
  // deadline, 11 s at the defaults, and every query pipelined behind them too (seen in about one run in four of
  // test/reliability/postgres-reset.test.ts). Destroying the socket on 'end' emits 'close' at once, and postgres.js
  // fails those queries with CONNECTION_CLOSED.
  socket.once("end", () => socket.destroy());

  const emit = socket.emit.bind(socket) as (event: string | symbol, ...args: unknown[]) => boolean;
  socket.emit = ((event: string | symbol, ...args: unknown[]) => {
    if (event === "data" && args[0] instanceof Uint8Array) {
      flushed = false;
      owed = Math.max(0, owed - readyReader(args[0]));
      if (owed === 0) timer = (clearTimeout(timer), undefined);
      else timer?.refresh();
    } else if (event === "close") {
      clearTimeout(timer);
    }
    return emit(event, ...args);
  }) as typeof socket.emit;
}

/**
 * In a buffer of whole frontend messages: Syncs ('S') and simple Queries ('Q'), each owed a ReadyForQuery,
 * and Flushes ('H'), owed whatever replies are pending.
 */
function countRequests(buffer: Uint8Array): { syncs: number; flushes: number } {
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let syncs = 0;
  let flushes = 0;
  for (let at = 0; at + 5 <= buffer.length; at += 1 + view.getInt32(at + 1)) {
    const type = buffer[at];
    if (type === 0x53 || type === 0x51) syncs++;
    else if (type === 0x48) flushes++;
  }
  return { syncs, flushes };
}

/**
 * Reads the backend's message stream chunk by chunk and returns, per chunk, how many ReadyForQuery ('Z')
 * messages began in it. Only the 5-byte headers are looked at; bodies are skipped.
 */
function readyForQueryCounter(): (chunk: Uint8Array) => number {
  let skip = 0;
  const header = new Uint8Array(5);
  let headerLength = 0;
  return (chunk) => {
    let count = 0;
    let at = 0;
    while (at < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - at);
        skip -= n;
        at += n;
        continue;
      }
      header[headerLength++] = chunk[at++]!;
      if (headerLength < 5) continue;
      headerLength = 0;
      if (header[0] === 0x5a) count++;
      skip = new DataView(header.buffer).getInt32(1) - 4;
    }
    return count;
  };
}
