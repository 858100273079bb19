/**
 * A fault-injecting TCP proxy in front of PostgreSQL, for tests of what the service does when its database
 * connection breaks. It listens on 127.0.0.1 and a free port, forwards to the test server, and on command
 * resets, stalls, refuses or cuts connections. It reads just enough of the wire protocol (a type byte and an
 * int32 length per message; the startup message has no type byte) to cut at a statement's exact boundaries,
 * and answers SSLRequest / GSSENCRequest with 'N' itself so the stream it parses is always plain.
 *
 *   const proxy = await startFaultProxy();                 // → the host and port of TEST_DATABASE_URL
 *   const sql = postgres(proxy.url(pg.url));               // same database, through the proxy
 *   proxy.reset();                                         // RST every open connection
 *   proxy.stall(); … every query hangs … proxy.heal();     // a partition: silence, no RST, no FIN
 *   const cut = proxy.cutAfterCommit({ match: /insert into messages/i });
 *   await send(); expect((await cut)?.committed).toBe(true); // committed, but the client never heard
 *   await proxy.close();
 *
 * Global modes apply to every connection, open and future; `proxy.links()` gives each open connection's own
 * reset / stall / heal.
 */
import net from "node:net";
import { TEST_DATABASE_URL } from "./database.ts";

/** What an armed cut did once it fired. */
export interface CutReport {
  /** Id of the connection that was cut (see `links()`). */
  link: number;
  /** The SQL text of the statement that triggered the cut ("" when it was not seen, e.g. a reused portal). */
  statement: string;
  /**
   * cutAfterCommit: the server finished the transaction and reported no error (false when it rolled back).
   * cutAfterQuerySent: always undefined, since the client-side cut happens before the server answers.
   */
  committed?: boolean;
}

export interface CutOptions {
  /** Only a statement whose SQL text matches arms the cut (default: the next statement executed). */
  match?: RegExp | string;
}

export interface QueryCutOptions extends CutOptions {
  /**
   * Forward the statement but not the Sync that follows it, so its implicit transaction never commits and the
   * server rolls it back when the connection closes (default false: the Sync is forwarded and the server may
   * well commit after the client has already seen the connection drop).
   */
  withholdSync?: boolean;
}

/** One proxied connection, client socket plus server socket. */
export interface ProxyLink {
  readonly id: number;
  /** Destroys both sockets abruptly (RST). */
  reset(): void;
  /** Ends the client's socket with a FIN and drops the server's. */
  hangUp(): void;
  /** Stops forwarding both ways; the sockets stay open and nothing is answered. */
  stall(): void;
  /** Resumes forwarding, delivering what was held back. */
  heal(): void;
}

export interface FaultProxy {
  readonly port: number;
  /** `databaseUrl` with its host and port replaced by the proxy's. */
  url(databaseUrl: string): string;
  /** The connections open now. */
  links(): ProxyLink[];
  /** Connections accepted since start, connections killed by reset() or hangUp(), and by a cut. */
  readonly stats: { accepted: number; reset: number; cut: number };
  /** Destroys every open connection abruptly (RST to both ends); new connections pass. */
  reset(): void;
  /**
   * Closes every open connection in order (FIN to the client, as when a server or pooler goes away without
   * a word); new connections pass. Unlike an RST, the client sees the close before any error.
   */
  hangUp(): void;
  /** A partition: open connections stop forwarding, new ones are accepted but never forwarded, until heal(). */
  stall(): void;
  /**
   * New connections are refused (ECONNREFUSED, as from a server that is down: the proxy stops listening);
   * open ones are left alone. Accepting and then closing would not do: postgres.js reconnects at once when a
   * connection closes during its startup, in a loop that never reports an error.
   */
  refuse(): void;
  /**
   * Back to pass-through: stalled connections resume, refusal ends (resolves once the proxy listens again),
   * armed cuts are disarmed (they resolve null).
   */
  heal(): Promise<void>;
  /**
   * Arms a cut: the next statement executed (Execute or simple Query) is forwarded to the server together
   * with its Sync, then the client's connection is destroyed before any reply reaches it.
   */
  cutAfterQuerySent(options?: QueryCutOptions): Promise<CutReport | null>;
  /**
   * Arms a cut: the next statement executed is forwarded and answered normally until the server's
   * ReadyForQuery that ends its transaction (status idle) has been read by the proxy; then the client's
   * connection is destroyed without delivering that reply, so the statement committed and the client never
   * learns it. Inside an explicit transaction this is the reply to COMMIT.
   */
  cutAfterCommit(options?: CutOptions): Promise<CutReport | null>;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** Default: host and port of TEST_DATABASE_URL (127.0.0.1:5432). */
  targetHost?: string;
  targetPort?: number;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

interface ArmedCut {
  kind: "query" | "commit";
  match?: RegExp | string;
  withholdSync: boolean;
  resolve(report: CutReport | null): void;
}

/** Starts the proxy on 127.0.0.1 and a free port. */
export async function startFaultProxy(options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const target = new URL(TEST_DATABASE_URL);
  const targetHost = options.targetHost ?? target.hostname;
  const targetPort = options.targetPort ?? Number(target.port || 5432);
  const stats = { accepted: 0, reset: 0, cut: 0 };
  const open = new Set<Link>();
  let armed: ArmedCut[] = [];
  let mode: "pass" | "stall" | "refuse" = "pass";
  let nextId = 1;

  /** Hands the first armed cut whose filter matches `statement` to the caller, removing it. */
  const takeCut = (statement: string): ArmedCut | undefined => {
    const index = armed.findIndex((cut) => matches(cut.match, statement));
    if (index < 0) return undefined;
    return armed.splice(index, 1)[0];
  };

  const server = net.createServer((client) => {
    stats.accepted++;
    const link = new Link(nextId++, client, targetHost, targetPort, {
      takeCut,
      onClose: () => open.delete(link),
      onReset: () => stats.reset++,
      onCut: () => stats.cut++,
    });
    open.add(link);
    if (mode === "stall") link.stall();
    link.start();
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  const stopListening = () => new Promise<void>((resolve) => server.close(() => resolve()));
  await listen(0);
  const port = (server.address() as net.AddressInfo).port;

  const arm = (cut: Omit<ArmedCut, "resolve">) =>
    new Promise<CutReport | null>((resolve) => armed.push({ ...cut, resolve }));

  return {
    port,
    stats,
    url(databaseUrl) {
      const url = new URL(databaseUrl);
      url.hostname = "127.0.0.1";
      url.port = String(port);
      return url.toString();
    },
    links: () => [...open],
    reset() {
      for (const link of [...open]) link.reset();
    },
    hangUp() {
      for (const link of [...open]) link.hangUp();
    },
    stall() {
      mode = "stall";
      for (const link of open) link.stall();
    },
    refuse() {
      if (mode !== "refuse") void stopListening();
      mode = "refuse";
    },
    async heal() {
      const wasRefusing = mode === "refuse";
      mode = "pass";
      for (const link of open) link.heal();
      const disarmed = armed;
      armed = [];
      for (const cut of disarmed) cut.resolve(null);
      if (wasRefusing) await listen(port);
    },
    cutAfterQuerySent: (o = {}) => arm({ kind: "query", match: o.match, withholdSync: o.withholdSync ?? false }),
    cutAfterCommit: (o = {}) => arm({ kind: "commit", match: o.match, withholdSync: false }),
    async close() {
      for (const link of [...open]) link.reset();
      if (mode !== "refuse") await stopListening();
    },
  };
}

function matches(filter: RegExp | string | undefined, statement: string): boolean {
  if (filter === undefined) return true;
  return typeof filter === "string" ? statement.includes(filter) : filter.test(statement);
}

interface LinkHooks {
  takeCut(statement: string): ArmedCut | undefined;
  onClose(): void;
  onReset(): void;
  onCut(): void;
}

/** A complete protocol message: its type ("" for the untyped startup family) and its raw bytes. */
interface Message {
  type: string;
  raw: Buffer;
  /** The bytes after type and length. */
  body: Buffer;
}

/** Splits a byte stream into whole messages, keeping an incomplete tail for the next chunk. */
class Framer {
  private pending: Buffer = Buffer.alloc(0);
  constructor(private untypedFirst: boolean) {}

  /** The next messages are untyped again (after the proxy answered an SSLRequest). */
  expectUntyped(): void {
    this.untypedFirst = true;
  }

  push(chunk: Buffer): Message[] {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: Message[] = [];
    for (;;) {
      const typed = !this.untypedFirst;
      const header = typed ? 5 : 4;
      if (this.pending.length < header) break;
      const length = this.pending.readInt32BE(typed ? 1 : 0);
      const total = length + (typed ? 1 : 0);
      if (this.pending.length < total) break;
      const raw = this.pending.subarray(0, total);
      out.push({ type: typed ? String.fromCharCode(raw[0]!) : "", raw, body: raw.subarray(header) });
      this.pending = this.pending.subarray(total);
      this.untypedFirst = false;
    }
    return out;
  }
}

const cstring = (buffer: Buffer, offset: number): [string, number] => {
  const end = buffer.indexOf(0, offset);
  return [buffer.toString("utf8", offset, end), end + 1];
};

class Link implements ProxyLink {
  private upstream: net.Socket | undefined;
  private stalled = false;
  private dead = false;
  /** A close that happened while stalled: behind a partition the other end cannot learn of it until heal. */
  private closedWhileStalled = false;
  /** Data that arrived while stalled, replayed in order on heal. */
  private held: { from: "client" | "server"; chunk: Buffer }[] = [];
  private readonly fromClient = new Framer(true);
  private readonly fromServer = new Framer(false);
  /** Prepared statement name → SQL, and portal name → SQL, as Parse and Bind announce them. */
  private readonly statements = new Map<string, string>();
  private readonly portals = new Map<string, string>();
  /** Sync and simple Query messages sent, and ReadyForQuery replies received: each Sync is answered by one. */
  private syncsSent = 0;
  private readiesSeen = 0;
  /** A cut that fired on this connection and is still in progress. */
  private cut:
    | { armed: ArmedCut; statement: string; phase: "forwarding" | "watching"; target: number; failed: boolean }
    | undefined;

  constructor(
    readonly id: number,
    private readonly client: net.Socket,
    private readonly host: string,
    private readonly port: number,
    private readonly hooks: LinkHooks,
  ) {
    client.setNoDelay(true);
    client.on("error", () => {});
    client.on("data", (chunk: Buffer) => this.receive("client", chunk));
    client.on("close", () => this.finish());
  }

  /** Connects upstream, unless stalled: a partitioned connection reaches nothing until heal(). */
  start(): void {
    if (!this.stalled) this.connectUpstream();
  }

  private connectUpstream(): void {
    if (this.upstream || this.dead) return;
    const upstream = net.connect({ host: this.host, port: this.port });
    this.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on("error", () => {});
    upstream.on("data", (chunk: Buffer) => this.receive("server", chunk));
    upstream.on("close", () => this.finish());
  }

  reset(): void {
    if (this.dead) return;
    this.hooks.onReset();
    this.kill();
  }

  hangUp(): void {
    if (this.dead) return;
    this.hooks.onReset();
    this.dead = true;
    this.client.end();
    this.upstream?.destroy();
    this.hooks.onClose();
  }

  stall(): void {
    this.stalled = true;
  }

  heal(): void {
    if (!this.stalled) return;
    this.stalled = false;
    this.connectUpstream();
    const held = this.held;
    this.held = [];
    for (const { from, chunk } of held) this.receive(from, chunk);
    if (this.closedWhileStalled) return this.finish();
    this.client.resume();
    this.upstream?.resume();
  }

  private receive(from: "client" | "server", chunk: Buffer): void {
    if (this.dead) return;
    if (this.stalled) {
      // Stop reading too, so the sender's kernel buffers fill as they would behind a dead route.
      this.held.push({ from, chunk });
      (from === "client" ? this.client : this.upstream)?.pause();
      return;
    }
    if (from === "client") this.clientMessages(this.fromClient.push(chunk));
    else this.serverMessages(this.fromServer.push(chunk));
  }

  private clientMessages(messages: Message[]): void {
    const forward: Buffer[] = [];
    for (const message of messages) {
      if (this.cut?.phase === "forwarding") {
        // cutAfterQuerySent: everything up to the statement's Sync goes through, then the line goes dead.
        if (message.type === "S") {
          if (!this.cut.armed.withholdSync) forward.push(message.raw);
          return this.cutNow(forward);
        }
        forward.push(message.raw);
        continue;
      }
      if (message.type === "") {
        const code = message.body.readInt32BE(0);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          this.client.write("N");
          this.fromClient.expectUntyped();
          continue;
        }
        if (code === CANCEL_REQUEST) this.fromClient.expectUntyped();
        forward.push(message.raw);
        continue;
      }
      const statement = this.track(message);
      forward.push(message.raw);
      if (message.type === "S" || message.type === "Q") this.syncsSent++;
      if (statement === undefined || this.cut) continue;
      const armed = this.hooks.takeCut(statement);
      if (!armed) continue;
      if (armed.kind === "query") {
        this.cut = { armed, statement, phase: "forwarding", target: 0, failed: false };
        if (message.type === "Q") return this.cutNow(forward);
      } else {
        // The reply that ends this statement is the one answering the next Sync (or this Query itself).
        const target = message.type === "Q" ? this.syncsSent : this.syncsSent + 1;
        this.cut = { armed, statement, phase: "watching", target, failed: false };
      }
    }
    if (forward.length) this.upstream?.write(Buffer.concat(forward));
  }

  /** Records statements and portals; returns the SQL of a message that executes a statement. */
  private track(message: Message): string | undefined {
    const { type, body } = message;
    if (type === "P") {
      const [name, next] = cstring(body, 0);
      this.statements.set(name, cstring(body, next)[0]);
    } else if (type === "B") {
      const [portal, next] = cstring(body, 0);
      this.portals.set(portal, this.statements.get(cstring(body, next)[0]) ?? "");
    } else if (type === "E") {
      return this.portals.get(cstring(body, 0)[0]) ?? "";
    } else if (type === "Q") {
      return cstring(body, 0)[0];
    }
    return undefined;
  }

  private serverMessages(messages: Message[]): void {
    const deliver: Buffer[] = [];
    for (const message of messages) {
      const cut = this.cut;
      // cutAfterQuerySent: the statement is on its way and no answer may reach the client any more.
      if (cut?.phase === "forwarding") continue;
      if (cut?.phase !== "watching" || this.readiesSeen + 1 < cut.target) {
        if (message.type === "Z") this.readiesSeen++;
        deliver.push(message.raw);
        continue;
      }
      // Replies of the watched statement (and, inside a transaction, of what follows up to its end) pass, all but
      // the ReadyForQuery: a client learns a statement's outcome only from that (postgres.js resolves a query on
      // it), and a statement prepared on the way is described after a Flush, with no ReadyForQuery, so holding
      // those replies would deadlock the client.
      if (message.type === "E") cut.failed = true;
      if (message.type === "C" && /^ROLLBACK/.test(cstring(message.body, 0)[0])) cut.failed = true;
      if (message.type !== "Z") {
        deliver.push(message.raw);
        continue;
      }
      this.readiesSeen++;
      if (message.body[0] === "I".charCodeAt(0)) {
        if (deliver.length) this.client.write(Buffer.concat(deliver));
        return this.cutNow([], !cut.failed);
      }
      // Still inside a transaction: let this reply through and wait for the one that ends it.
      deliver.push(message.raw);
      cut.target = this.readiesSeen + 1;
    }
    if (deliver.length) this.client.write(Buffer.concat(deliver));
  }

  /**
   * Ends a cut: the client's socket is reset at once; the server's gets `toServer` and then a FIN, so what was
   * forwarded surely arrives and the server decides the statement's fate on its own.
   */
  private cutNow(toServer: Buffer[], committed?: boolean): void {
    const cut = this.cut!;
    this.hooks.onCut();
    this.dead = true;
    this.client.resetAndDestroy();
    const upstream = this.upstream;
    if (upstream) {
      if (toServer.length) upstream.write(Buffer.concat(toServer));
      upstream.end();
      // A server that never closes its side is not kept open beyond the test's patience.
      setTimeout(() => upstream.destroy(), 5000).unref();
    }
    this.hooks.onClose();
    cut.armed.resolve({ link: this.id, statement: cut.statement, ...(committed === undefined ? {} : { committed }) });
  }

  private kill(): void {
    this.dead = true;
    this.client.resetAndDestroy();
    this.upstream?.resetAndDestroy();
    this.hooks.onClose();
  }

  /** One side closed on its own: close the other, as a plain TCP relay would. */
  private finish(): void {
    if (this.dead) return;
    if (this.stalled) {
      this.closedWhileStalled = true;
      return;
    }
    this.dead = true;
    this.client.destroy();
    this.upstream?.destroy();
    this.hooks.onClose();
  }
}
