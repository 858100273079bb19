#!/usr/bin/env bash
# Send-path benchmark (issue 3): dist/messaging against a fresh PostgreSQL database on this machine,
# wrk -t2 -c50 -d15s posting unique SMS over ~500 conversations, then GET /api/conversations,
# then pgbench one-row inserts (16 clients) on the same server for comparison.
# Usage: test/bench/send.sh   (env: BASE_DB_URL, DURATION, LOG_LEVEL, POOL)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
BASE_DB_URL="${BASE_DB_URL:-postgres://postgres@127.0.0.1:5432}"
DURATION="${DURATION:-15s}"
DB="msg_bench_$$"
PORT="${PORT:-18090}"
[ -x dist/messaging ] || bun run build >/dev/null

psql "$BASE_DB_URL/postgres" -qc "CREATE DATABASE $DB" >/dev/null
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

export DATABASE_URL="$BASE_DB_URL/$DB" PORT MESSAGING_AUTH=off LOG_LEVEL="${LOG_LEVEL:-warn}"
export API_RATE_LIMIT_PER_IP_PER_MIN=10000000 API_RATE_LIMIT_PER_SENDER_PER_MIN=10000000
export MESSAGING_DB_POOL_SIZE="${POOL:-20}"
./dist/messaging serve --migrate >/tmp/msg-bench-$$.log 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

echo "== warm-up (3s)"
wrk -t2 -c50 -d3s -s test/bench/send.lua "http://127.0.0.1:$PORT" >/dev/null
echo "== POST /api/messages/sms: wrk -t2 -c50 -d$DURATION (LOG_LEVEL=$LOG_LEVEL, pool $MESSAGING_DB_POOL_SIZE)"
wrk -t2 -c50 -d"$DURATION" --latency -s test/bench/send.lua "http://127.0.0.1:$PORT" | grep -E "Requests/sec|non-2xx|p50|requests/s|Socket errors|Non-2xx"
psql "$DATABASE_URL" -Atc "SELECT 'stored messages: ' || count(*) FROM messages" 
psql "$DATABASE_URL" -Atc "SELECT 'conversations: ' || count(*) FROM conversations"
echo "== GET /api/conversations: wrk -t2 -c50 -d$DURATION"
wrk -t2 -c50 -d"$DURATION" --latency "http://127.0.0.1:$PORT/api/conversations" | grep -E "Requests/sec|Latency|99%|Non-2xx"
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=

echo "== pgbench: one-row inserts, 16 clients, $DURATION (same server)"
psql "$DATABASE_URL" -qc "CREATE TABLE IF NOT EXISTS pgbench_rows (id bigserial primary key, body text not null, at timestamptz default now())"
echo "INSERT INTO pgbench_rows (body) VALUES ('bench row');" >/tmp/msg-pgbench-$$.sql
pgbench -n -c 16 -j 2 -T "${DURATION%s}" -f /tmp/msg-pgbench-$$.sql "$DATABASE_URL" 2>/dev/null | grep -E "^tps|latency average"
rm -f /tmp/msg-pgbench-$$.sql /tmp/msg-bench-$$.log
