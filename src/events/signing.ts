import { signWebhook } from "../security/webhook-signature.ts";

/**
 * The `X-Messaging-Signature` of an event POST: the SPEC §8 format (`t=<unix>,v1=<hex>`) with one `v1=` per
 * secret that signs now, the current one first. During a rotation's overlap that is two values, so a receiver
 * still holding the old secret and one already holding the new one both verify the same request.
 */
export function signEvent(secrets: readonly string[], body: Uint8Array, t: number): string {
  const prefix = `t=${t},`;
  return [`t=${t}`, ...secrets.map((secret) => signWebhook(secret, body, t).slice(prefix.length))].join(",");
}
