// The README's ten-line verifier of event signatures works on what the service sends (src/events/signing.ts),
// with one secret or either of two during a rotation, and refuses a changed body, a wrong secret and a stale time.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signEvent } from "../../src/events/signing.ts";

const readme = readFileSync(join(import.meta.dir, "..", "..", "README.md"), "utf8");

test("the README's verification example verifies event signatures", async () => {
  const block = /```ts\n(import \{ createHmac, timingSafeEqual \}[\s\S]*?verifyMessagingSignature[\s\S]*?)```/.exec(readme)?.[1];
  expect(block).toBeDefined();
  expect(block!.trim().split("\n").length).toBeLessThanOrEqual(10);
  const dir = mkdtempSync(join(tmpdir(), "msg-readme-verify-"));
  try {
    writeFileSync(join(dir, "verify.ts"), block!);
    const { verifyMessagingSignature } = (await import(join(dir, "verify.ts"))) as {
      verifyMessagingSignature: (body: Uint8Array, header: string, secret: string, toleranceSecs?: number) => boolean;
    };
    const body = Buffer.from(JSON.stringify({ id: "evt_1", type: "message.sent", sequence: 2, data: { body: "héllo" } }));
    const now = Math.floor(Date.now() / 1000);
    const one = signEvent(["whsec_new"], body, now);
    expect(verifyMessagingSignature(body, one, "whsec_new")).toBe(true);
    expect(verifyMessagingSignature(body, one, "whsec_other")).toBe(false);
    expect(verifyMessagingSignature(Buffer.from(body.toString().replace("2", "3")), one, "whsec_new")).toBe(false);
    expect(verifyMessagingSignature(body, signEvent(["whsec_new"], body, now - 600), "whsec_new")).toBe(false);
    const two = signEvent(["whsec_new", "whsec_old"], body, now);
    expect(verifyMessagingSignature(body, two, "whsec_old")).toBe(true);
    expect(verifyMessagingSignature(body, two, "whsec_new")).toBe(true);
    expect(verifyMessagingSignature(body, "t=abc,v1=zz", "whsec_new")).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
