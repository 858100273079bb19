#!/usr/bin/env bash
# Two binaries' API-only send rates against pgbench, interleaved: both serve at once (MESSAGING_DELIVERY_WORKERS=0,
# each on a database of its own), and each round runs SLICE seconds of wrk on A, pgbench one-row inserts (16 clients),
# wrk on B, pgbench again. On a shared machine the load drifts within a minute; slices a few seconds apart see the
# same drift, where two `bun run bench` runs do not.
# Usage: test/bench/interleave.sh BIN_A BIN_B [ROUNDS=8]   (env: BASE_DB_URL, SLICE=3)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=test/bench/lib.sh
. test/bench/lib.sh
BIN_A="${1:?usage: interleave.sh BIN_A BIN_B [ROUNDS]}"
BIN_B="${2:?usage: interleave.sh BIN_A BIN_B [ROUNDS]}"
ROUNDS="${3:-8}"
SLICE="${SLICE:-3}"
BASE_DB_URL="${BASE_DB_URL:-postgres://postgres@127.0.0.1:5432}"
PREFIX="msg_bench_il_$$"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in a b pgbench; do psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS ${PREFIX}_$db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -f "/tmp/$PREFIX.sql"
}
trap cleanup EXIT
declare -A PORT_OF
for side in a b; do
  bin=$BIN_A; [ "$side" = b ] && bin=$BIN_B
  db="${PREFIX}_$side"
  psql "$BASE_DB_URL/postgres" -qc "CREATE DATABASE $db" >/dev/null
  DATABASE_URL="$BASE_DB_URL/$db" "$bin" migrate up >/dev/null
  port=$(free_port)
  PORT_OF[$side]=$port
  env MESSAGING_AUTH=off API_RATE_LIMIT_PER_IP_PER_MIN=10000000 API_RATE_LIMIT_PER_SENDER_PER_MIN=10000000 LOG_LEVEL=info \
    MESSAGING_DELIVERY_WORKERS=0 DATABASE_URL="$BASE_DB_URL/$db" PORT="$port" HOST=127.0.0.1 "$bin" serve >/dev/null 2>&1 &
  PIDS+=($!)
  up=""
  for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && { up=1; break; }; sleep 0.05; done
  [ -n "$up" ] || { echo "$bin did not start" >&2; exit 1; }
  wrk -t2 -c50 -d2s -s test/bench/send.lua "http://127.0.0.1:$port" >/dev/null
done
psql "$BASE_DB_URL/postgres" -qc "CREATE DATABASE ${PREFIX}_pgbench" >/dev/null
psql "$BASE_DB_URL/${PREFIX}_pgbench" -qc "CREATE TABLE pgbench_rows (id bigserial primary key, body text not null, at timestamptz default now())"
echo "INSERT INTO pgbench_rows (body) VALUES ('bench row');" >"/tmp/$PREFIX.sql"
sends() { wrk -t2 -c50 -d"${SLICE}s" -s test/bench/send.lua "http://127.0.0.1:$1" | awk '/^requests\/s:/ { print $2 }'; }
inserts() { pgbench -n -c 16 -j 2 -T "$SLICE" -f "/tmp/$PREFIX.sql" "$BASE_DB_URL/${PREFIX}_pgbench" 2>/dev/null | awk '/^tps/ { printf "%.0f", $3 }'; }
sum_a=0; sum_b=0; sum_p=0
for r in $(seq "$ROUNDS"); do
  a=$(sends "${PORT_OF[a]}"); p1=$(inserts); b=$(sends "${PORT_OF[b]}"); p2=$(inserts)
  echo "round $r: A $a/s, pgbench $p1, B $b/s, pgbench $p2 (load $(cut -d' ' -f1 /proc/loadavg))"
  sum_a=$((sum_a + a)); sum_b=$((sum_b + b)); sum_p=$((sum_p + p1 + p2))
done
awk -v a="$sum_a" -v b="$sum_b" -v p="$sum_p" -v n="$ROUNDS" 'BEGIN {
  printf "mean: A %.0f sends/s, B %.0f sends/s, pgbench %.0f tps; A/pgbench %.2f, B/pgbench %.2f, B/A %.2f\n",
    a / n, b / n, p / (2 * n), 2 * a / p, 2 * b / p, b / a }'
