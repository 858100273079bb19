/**
 * A client app's webhook receiver on loopback, for the event tests: records every POST (time, headers, raw body)
 * and answers what the test scripts — a status, or `"hang"` (never answers until closed).
 *
 *   const r = startReceiver(() => 200);    // r.url, r.hits, r.close()
 */
import { verifyWebhookSignature } from "../../src/security/webhook-signature.ts";

export interface Hit {
  at: number;
  headers: Headers;
  raw: Uint8Array;
  body: { id: string; type: string; created_at: string; sequence: number; data: Record<string, any> };
}

export type Answer = number | "hang";

export interface Receiver {
  url: string;
  port: number;
  hits: Hit[];
  /** Hits whose event concerns this message id. */
  forMessage(id: string): Hit[];
  close(): void;
}

export function startReceiver(answer: (n: number, hit: Hit) => Answer, path = "/hook"): Receiver {
  const hits: Hit[] = [];
  const hanging: (() => void)[] = [];
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    async fetch(request) {
      const raw = new Uint8Array(await request.arrayBuffer());
      const hit: Hit = { at: Date.now(), headers: request.headers, raw, body: JSON.parse(new TextDecoder().decode(raw)) };
      hits.push(hit);
      const reply = answer(hits.length, hit);
      if (reply === "hang") {
        await new Promise<void>((resolve) => hanging.push(resolve));
        return new Response("late", { status: 200 });
      }
      return new Response(reply === 204 ? null : "ok", { status: reply });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}${path}`,
    port: server.port!,
    hits,
    forMessage: (id) => hits.filter((h) => h.body.data?.id === id && h.body.type.startsWith("message.")),
    close: () => {
      for (const release of hanging.splice(0)) release();
      server.stop(true);
    },
  };
}

/** Whether a hit's signature verifies with `secret` alone (the SPEC §8 verifier, as a receiver would run it). */
export function verifies(hit: Hit, secret: string): boolean {
  return verifyWebhookSignature(hit.headers.get("x-messaging-signature"), hit.raw, [secret], Math.floor(Date.now() / 1000), 300).ok;
}
