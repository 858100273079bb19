#!/usr/bin/env bash
# One kill -9 recovery run (issue 19), used by bench.sh: the binary on a fresh PostgreSQL database, the mock
# provider answering after LATENCY_MS (so claims are in flight), sends at RATE/s; after KILL_AFTER seconds the
# process is killed with SIGKILL and the sender stopped; a new process is started and the seconds from its
# start until every stored outbound message is `sent` are measured.
# Prints one line: "<seconds> s to all sent: <n> messages, <h> claimed at the kill, max calls <c>"
# (max calls: the highest mock_provider_sends.calls, 1 when no message was handed to the provider twice).
# Usage: test/bench/recovery.sh   (env: BASE_DB_URL, MESSAGING_BIN, RATE=300, KILL_AFTER=3, LATENCY_MS=300, LIMIT_S=90)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=test/bench/lib.sh
. test/bench/lib.sh
BASE_DB_URL="${BASE_DB_URL:-postgres://postgres@127.0.0.1:5432}"
BIN="${MESSAGING_BIN:-$PWD/dist/messaging}"
RATE="${RATE:-300}"
KILL_AFTER="${KILL_AFTER:-3}"
LATENCY_MS="${LATENCY_MS:-300}"
LIMIT_S="${LIMIT_S:-90}"
DB="msg_bench_recovery_$$"
LOG="/tmp/msg-bench-recovery-$$.log"
PID=""
SENDER=""
cleanup() {
  for p in $PID $SENDER; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -f "$LOG"
}
trap cleanup EXIT
q() { psql "$BASE_DB_URL/$DB" -Atc "$1"; }
export DATABASE_URL="$BASE_DB_URL/$DB" MESSAGING_AUTH=off LOG_LEVEL=warn HOST=127.0.0.1
export API_RATE_LIMIT_PER_IP_PER_MIN=10000000 API_RATE_LIMIT_PER_SENDER_PER_MIN=10000000
psql "$BASE_DB_URL/postgres" -qc "CREATE DATABASE $DB" >/dev/null
"$BIN" migrate up >/dev/null
start() { # a port taken between the check and the listen (the machine is shared) is retried on another
  for _ in 1 2 3; do
    PORT=$(free_port)
    PORT=$PORT "$BIN" serve >>"$LOG" 2>&1 &
    PID=$!
    for _ in $(seq 400); do
      curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return
      kill -0 "$PID" 2>/dev/null || break
      sleep 0.025
    done
    kill -9 "$PID" 2>/dev/null || true
  done
  echo "serve did not start:" >&2; cat "$LOG" >&2; exit 1
}
start
curl -sf -X PUT "http://127.0.0.1:$PORT/api/provider/mock/config" -H 'content-type: application/json' \
  -d "{\"timeout_pct\":0,\"error_pct\":0,\"ratelimit_pct\":0,\"seed\":null,\"latency_ms\":$LATENCY_MS}" >/dev/null
bun test/bench/steady-send.ts "http://127.0.0.1:$PORT" "$RATE" 60 >/dev/null 2>&1 &
SENDER=$!
sleep "$KILL_AFTER"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=""
kill -9 "$SENDER"; wait "$SENDER" 2>/dev/null || true; SENDER=""
held=$(q "SELECT count(*) FROM $(jobs_of "$DATABASE_URL") WHERE locked_by IS NOT NULL")
# The mock's latency stays for the restart: a taken-over message is delivered as slowly as the others.
t0=$(date +%s%N)
start
while [ "$(q "SELECT count(*) FROM messages WHERE direction = 'outbound' AND status <> 'sent'")" != 0 ]; do
  [ $(( ($(date +%s%N) - t0) / 1000000000 )) -lt "$LIMIT_S" ] || { echo "not all sent within $LIMIT_S s" >&2; break; }
  sleep 0.1
done
t1=$(date +%s%N)
n=$(q "SELECT count(*) FROM messages WHERE direction = 'outbound'")
calls=$(q "SELECT coalesce(max(calls), 0) FROM mock_provider_sends")
awk -v a="$t0" -v b="$t1" -v n="$n" -v h="$held" -v c="$calls" 'BEGIN { printf "%.1f s to all sent: %d messages, %d claimed at the kill, max calls %d\n", (b - a) / 1e9, n, h, c }'
