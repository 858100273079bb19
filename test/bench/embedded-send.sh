#!/usr/bin/env bash
# Send-path benchmark on the embedded default (issue 6, durable commits): a binary on a fresh data directory,
# no DATABASE_URL, wrk posting unique SMS over ~500 conversations (test/bench/send.lua).
# Prints sends/s and the number of stored messages, so "before" and "after" durable commits can be compared:
#   test/bench/embedded-send.sh                      # dist/messaging
#   BINARY=/tmp/messaging-main test/bench/embedded-send.sh
# (env: BINARY, DURATION, CONNECTIONS, PORT, LOG_LEVEL, DATA_ROOT — where the data directory is made; use a
# real disk, not tmpfs, or fsync costs nothing)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
BINARY="${BINARY:-dist/messaging}"
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-50}"
PORT="${PORT:-18091}"
DATA_ROOT="${DATA_ROOT:-$PWD}"
[ -x "$BINARY" ] || bun run build >/dev/null
DATA_DIR="$(mktemp -d "$DATA_ROOT/.msg-bench-embedded-XXXXXX")"
LOG="$DATA_DIR.log"

cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$DATA_DIR" "$LOG"
}
trap cleanup EXIT

export PORT HOST=127.0.0.1 MESSAGING_AUTH=off LOG_LEVEL="${LOG_LEVEL:-warn}"
export API_RATE_LIMIT_PER_IP_PER_MIN=10000000 API_RATE_LIMIT_PER_SENDER_PER_MIN=10000000
unset DATABASE_URL
"$BINARY" serve --data-dir "$DATA_DIR/data" >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

echo "== warm-up (3s)"
wrk -t2 -c"$CONNECTIONS" -d3s -s test/bench/send.lua "http://127.0.0.1:$PORT" >/dev/null
echo "== embedded POST /api/messages/sms: $BINARY, wrk -t2 -c$CONNECTIONS -d$DURATION, data in $DATA_ROOT"
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s test/bench/send.lua "http://127.0.0.1:$PORT" | grep -E "non-2xx|p50|requests/s"
curl -sf "http://127.0.0.1:$PORT/metrics" | grep -E "^messaging_send_batch_size_(sum|count)" || true
