/**
 * Sends SMS at a steady rate (not as fast as possible, unlike wrk) for the delivery latency benchmark.
 * Usage: bun test/bench/steady-send.ts BASE_URL RATE_PER_S SECONDS
 * Prints one line: sent, answered 202, other answers, achieved rate.
 */
const [base, rateText, secondsText] = process.argv.slice(2);
if (!base || !rateText || !secondsText) throw new Error("usage: steady-send.ts BASE_URL RATE_PER_S SECONDS");
const rate = Number(rateText);
const seconds = Number(secondsText);
const total = Math.round(rate * seconds);
const TICK_MS = 10;
let sent = 0;
let ok = 0;
let other = 0;
const pending: Promise<void>[] = [];
const started = performance.now();

function sendOne(i: number): Promise<void> {
  const body = JSON.stringify({
    from: `+1202555${String(i % 500).padStart(4, "0")}`,
    to: "+18045550001",
    type: "sms",
    body: `steady ${i}`,
    attachments: null,
    timestamp: "2024-11-01T14:00:00Z",
  });
  return fetch(`${base}/api/messages/sms`, { method: "POST", headers: { "content-type": "application/json" }, body }).then(
    async (res) => {
      await res.arrayBuffer();
      if (res.status === 202) ok += 1;
      else other += 1;
    },
    () => {
      other += 1;
    },
  );
}

while (sent < total) {
  // Catch up to where the schedule says we should be, so timer drift does not lower the rate.
  const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
  while (sent < due) pending.push(sendOne(sent++));
  await Bun.sleep(TICK_MS);
}
await Promise.all(pending);
const elapsed = (performance.now() - started) / 1000;
console.log(`sent ${sent}, 202: ${ok}, other: ${other}, achieved ${(sent / elapsed).toFixed(0)}/s over ${elapsed.toFixed(1)} s`);
export {};
