/**
 * HTTP/1.1 spoken by hand over a TCP socket, for what `fetch` will not send: odd or lower-case methods,
 * authority-form targets, duplicate or negative Content-Length, broken chunked framing.
 *
 *   const res = await rawHttp(port, "CONNECT user@example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n");
 *   res.status   // 400, or 0 when the connection closed without an answer
 */
import { connect } from "node:net";

export interface RawResponse {
  /** 0 when the server closed (or went quiet) without a status line. */
  status: number;
  /** Lower-case header names; a repeated header keeps its last value. */
  headers: Map<string, string>;
  body: string;
  /** The parsed body when it is JSON, else undefined. */
  json: any;
  /** Milliseconds from sending the first byte to the end of the first response (or the give-up). */
  ms: number;
}

/**
 * Sends `payload` (a string is sent as latin1 bytes, so any byte can be written) and reads the first response:
 * up to Content-Length, or until the server closes, or until `timeoutMs` passes.
 */
export function rawHttp(port: number, payload: string | Uint8Array, timeoutMs = 3000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, "127.0.0.1");
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...parseResponse(received), ms: performance.now() - started });
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on("connect", () => socket.write(typeof payload === "string" ? Buffer.from(payload, "latin1") : payload));
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (isComplete(received)) finish();
    });
    socket.on("end", finish);
    socket.on("close", finish);
    socket.on("error", finish);
  });
}

function headEnd(bytes: Buffer): number {
  return bytes.indexOf("\r\n\r\n");
}

function isComplete(bytes: Buffer): boolean {
  const end = headEnd(bytes);
  if (end === -1) return false;
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(bytes.subarray(0, end).toString("latin1"));
  return length !== null && bytes.length >= end + 4 + Number(length[1]);
}

function parseResponse(bytes: Buffer): Omit<RawResponse, "ms"> {
  const end = headEnd(bytes);
  const headers = new Map<string, string>();
  if (end === -1) return { status: 0, headers, body: "", json: undefined };
  const [statusLine = "", ...lines] = bytes.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const declared = headers.get("content-length");
  const rest = bytes.subarray(end + 4);
  const body = (declared === undefined ? rest : rest.subarray(0, Number(declared))).toString("utf8");
  let json: unknown;
  if (/^application\/json/i.test(headers.get("content-type") ?? "")) {
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
  }
  return { status, headers, body, json };
}
