#!/usr/bin/env bash
# Delivery benchmark (issue 7): dist/messaging on a fresh PostgreSQL database, mock provider with latency 0.
#  1. drain a backlog of N queued messages (seeded with SQL) with 1 and then 2 `serve` processes;
#  2. at a steady RATE sends/s, the time from the 202 to `sent` (p50, p99), from the rows' timestamps;
#  3. test/bench/send.sh's wrk send load with delivery on and off, next to pgbench one-row inserts.
# Usage: test/bench/delivery.sh   (env: BASE_DB_URL, BACKLOG=20000, RATE=500, STEADY_SECONDS=20, DURATION=15s, LOG_LEVEL,
#                                  ONLY=drain|steady|load to run one part)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=test/bench/lib.sh
. test/bench/lib.sh
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
BASE_DB_URL="${BASE_DB_URL:-postgres://postgres@127.0.0.1:5432}"
BACKLOG="${BACKLOG:-20000}"
RATE="${RATE:-500}"
STEADY_SECONDS="${STEADY_SECONDS:-20}"
DURATION="${DURATION:-15s}"
DB="msg_bench_delivery_$$"
[ -x dist/messaging ] || bun run build >/dev/null
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

export DATABASE_URL="$BASE_DB_URL/$DB" MESSAGING_AUTH=off LOG_LEVEL="${LOG_LEVEL:-warn}"
export API_RATE_LIMIT_PER_IP_PER_MIN=10000000 API_RATE_LIMIT_PER_SENDER_PER_MIN=10000000

fresh_db() {
  psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  psql "$BASE_DB_URL/postgres" -qc "CREATE DATABASE $DB" >/dev/null
  ./dist/messaging migrate up >/dev/null
}

start_serve() { # port [env...]
  local port=$1; shift
  env PORT="$port" "$@" ./dist/messaging serve >>"/tmp/msg-bench-delivery-$$.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1; done
  echo "serve on port $port did not start" >&2; exit 1
}

stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

drain() { # processes
  local n=$1
  fresh_db
  seed_backlog "$DATABASE_URL" "$BACKLOG"
  local queued; queued=$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM $(jobs_of "$DATABASE_URL")")
  for i in $(seq "$n"); do start_serve $((18190 + i)); done
  local deadline=$((SECONDS + 120))
  while [ "$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM $(jobs_of "$DATABASE_URL")")" != "0" ]; do
    [ $SECONDS -lt $deadline ] || { echo "drain did not finish in 120 s" >&2; break; }
    sleep 0.2
  done
  psql "$DATABASE_URL" -Atc "
    SELECT format('%s process(es): %s messages sent in %s s = %s msg/s; provider calls %s',
      $n, count(*) FILTER (WHERE m.status = 'sent'),
      round(extract(epoch FROM max(m.updated_at) - (SELECT min(started_at) FROM delivery_attempts))::numeric, 2),
      round(count(*) FILTER (WHERE m.status = 'sent') / nullif(extract(epoch FROM max(m.updated_at) - (SELECT min(started_at) FROM delivery_attempts)), 0)),
      (SELECT count(*) FROM delivery_attempts))
      FROM messages m WHERE m.direction = 'outbound'"
  [ "$queued" = "$BACKLOG" ] || echo "(seeded $queued)"
  stop_all
}

want() { [ -z "${ONLY:-}" ] || [ "$ONLY" = "$1" ]; }

if want drain; then
echo "== 1. drain a backlog of $BACKLOG queued messages (LOG_LEVEL=$LOG_LEVEL)"
drain 1
drain 2
fi

if want steady; then
echo "== 2. steady $RATE sends/s for $STEADY_SECONDS s: time from the 202 to sent"
fresh_db
start_serve 18190
bun test/bench/steady-send.ts "http://127.0.0.1:18190" "$RATE" "$STEADY_SECONDS"
sleep 1
psql "$DATABASE_URL" -Atc "
  SELECT format('202 -> sent over %s messages: p50 %s ms, p99 %s ms, max %s ms; not sent: %s',
    count(*) FILTER (WHERE status = 'sent'),
    round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1),
    round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 1),
    round(max(ms)::numeric, 1),
    count(*) FILTER (WHERE status <> 'sent'))
    FROM (SELECT status, extract(epoch FROM updated_at - created_at) * 1000 AS ms FROM messages WHERE direction = 'outbound') s"
stop_all
fi

if want load; then
echo "== 3. send load (wrk -t2 -c50 -d$DURATION) with delivery on and off, and pgbench on the same server"
for workers in 2 0; do
  fresh_db
  start_serve 18190 MESSAGING_DELIVERY_WORKERS=$workers
  wrk -t2 -c50 -d3s -s test/bench/send.lua "http://127.0.0.1:18190" >/dev/null
  rps=$(wrk -t2 -c50 -d"$DURATION" -s test/bench/send.lua "http://127.0.0.1:18190" | awk '/Requests\/sec/ {print $2}')
  left=$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM $(jobs_of "$DATABASE_URL")")
  stop_all
  echo "delivery workers $workers: $rps sends/s (jobs still queued at the end: $left)"
  eval "RPS_$workers=$rps"
done
psql "$DATABASE_URL" -qc "CREATE TABLE IF NOT EXISTS pgbench_rows (id bigserial primary key, body text not null, at timestamptz default now())"
echo "INSERT INTO pgbench_rows (body) VALUES ('bench row');" >"/tmp/msg-pgbench-$$.sql"
tps=$(pgbench -n -c 16 -j 2 -T "${DURATION%s}" -f "/tmp/msg-pgbench-$$.sql" "$DATABASE_URL" 2>/dev/null | awk '/^tps/ {print $3}')
rm -f "/tmp/msg-pgbench-$$.sql"
echo "pgbench one-row inserts: $tps tps"
awk -v on="$RPS_2" -v off="$RPS_0" -v tps="$tps" 'BEGIN { printf "sends/s / pgbench tps: delivery on %.2f, delivery off %.2f\n", on / tps, off / tps }'
fi
rm -f "/tmp/msg-bench-delivery-$$.log"
