#!/usr/bin/env bash
# `bun run bench`: every figure of the delivery-cost issue in one run, and one table of ratios at the end.
# Ratios are what count on a shared machine: each compares two figures measured minutes apart in this run.
#   1. send load (test/bench/send.lua, wrk -t2 -c50): default `serve` on PostgreSQL (delivery on, LOG_LEVEL=info,
#      mock latency 0), then API-only (MESSAGING_DELIVERY_WORKERS=0), then pgbench one-row inserts (16 clients);
#      the backlog left when the delivery-on run ends; CPU seconds per 1,000 delivered messages (service and its
#      PostgreSQL backends, from /proc), and per 1,000 accepted in the API-only run: the difference is delivery's.
#   2. drain of a BACKLOG (20,000) seeded with SQL, one `serve`: messages/s and CPU per 1,000.
#   3. /healthz of the binary (embedded database, LOG_LEVEL=info, auth on) next to a bare Elysia route.
#   4. RECOVERY_RUNS (5) kill -9 runs of test/bench/recovery.sh: seconds from the restart until every stored
#      message is `sent`.
# Usage: bun run bench   (env: BASE_DB_URL, DURATION=10s, BACKLOG=20000, RECOVERY_RUNS=5, ONLY=load|drain|healthz|recovery,
#                         MESSAGING_BIN=/path/to/binary measures another build)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=test/bench/lib.sh
. test/bench/lib.sh
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
BASE_DB_URL="${BASE_DB_URL:-postgres://postgres@127.0.0.1:5432}"
DURATION="${DURATION:-10s}"
BACKLOG="${BACKLOG:-20000}"
RECOVERY_RUNS="${RECOVERY_RUNS:-5}"
BIN="${MESSAGING_BIN:-$PWD/dist/messaging}"
[ -x "$BIN" ] || bun run build >/dev/null
export MESSAGING_BIN="$BIN"
DB="msg_bench_all_$$"
LOG="/tmp/msg-bench-all-$$.log"
PIDS=()
ROWS=()
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
load() { cut -d" " -f1-3 /proc/loadavg; }

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -f "$LOG"
}
trap cleanup EXIT

fresh_db() {
  psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  psql "$BASE_DB_URL/postgres" -qc "CREATE DATABASE $DB" >/dev/null
  DATABASE_URL="$BASE_DB_URL/$DB" "$BIN" migrate up >/dev/null
}
q() { psql "$BASE_DB_URL/$DB" -Atc "$1"; }

# PostgreSQL side: every process forked by the postmaster whose command line names this database (its backends).
pg_pids() { pgrep -f "postgres: .* $DB " || true; }
# CPU seconds (user + system) of the given pids, from /proc/PID/stat fields 14 and 15.
cpu_of() {
  local ticks=0 pid f
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    f=$(sed 's/.*) //' "/proc/$pid/stat") || continue
    ticks=$((ticks + $(echo "$f" | awk '{ print $12 + $13 }')))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}

PORT=""
start_serve() { # env...   (a port taken between the check and the listen, on a shared machine, is retried)
  for _ in 1 2 3; do
    PORT=$(free_port)
    env DATABASE_URL="$BASE_DB_URL/$DB" PORT="$PORT" HOST=127.0.0.1 "$@" "$BIN" serve >>"$LOG" 2>&1 &
    PIDS+=($!)
    SERVE_PID=$!
    for _ in $(seq 600); do
      curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return
      kill -0 "$SERVE_PID" 2>/dev/null || break
      sleep 0.05
    done
  done
  echo "serve did not start; its log:" >&2; cat "$LOG" >&2; exit 1
}
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
row() { ROWS+=("$(printf '| %-52s | %12s | %-44s | %8s | %s |' "$1" "$2" "$3" "$4" "$5")"); }

export MESSAGING_AUTH=off API_RATE_LIMIT_PER_IP_PER_MIN=10000000 API_RATE_LIMIT_PER_SENDER_PER_MIN=10000000

if want load; then
  echo "== 1. send load, wrk -t2 -c50 -d$DURATION (load $(load))" >&2
  declare -A RPS
  for mode in on off; do
    fresh_db
    if [ "$mode" = on ]; then start_serve LOG_LEVEL=info; else start_serve LOG_LEVEL=info MESSAGING_DELIVERY_WORKERS=0; fi
    wrk -t2 -c50 -d2s -s test/bench/send.lua "http://127.0.0.1:$PORT" >/dev/null
    q "SELECT 1" >/dev/null
    before_sent=$(q "SELECT count(*) FROM messages WHERE status = 'sent'")
    before_all=$(q "SELECT count(*) FROM messages")
    mapfile -t pgp < <(pg_pids)
    c0_svc=$(cpu_of "$SERVE_PID"); c0_pg=$(cpu_of "${pgp[@]}")
    out=$(wrk -t2 -c50 -d"$DURATION" -s test/bench/send.lua "http://127.0.0.1:$PORT")
    mapfile -t pgp < <(pg_pids)
    c1_svc=$(cpu_of "$SERVE_PID"); c1_pg=$(cpu_of "${pgp[@]}")
    RPS[$mode]=$(echo "$out" | awk '/^requests\/s:/ { print $2 }')
    bad=$(echo "$out" | awk '/^non-2xx:/ { print $2 }')
    if [ "$mode" = on ]; then
      sent=$(( $(q "SELECT count(*) FROM messages WHERE status = 'sent'") - before_sent ))
      left=$(q "SELECT count(*) FROM messages WHERE direction = 'outbound' AND status NOT IN ('sent', 'delivered', 'failed')")
      sleep 3
      left3=$(q "SELECT count(*) FROM messages WHERE direction = 'outbound' AND status NOT IN ('sent', 'delivered', 'failed')")
      svc=$(awk -v a="$c0_svc" -v b="$c1_svc" -v n="$sent" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')
      pgc=$(awk -v a="$c0_pg" -v b="$c1_pg" -v n="$sent" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')
      echo "delivery on: ${RPS[on]} sends/s (non-2xx $bad), sent during the run $sent, backlog at the end $left, 3 s later $left3; CPU per 1,000 sent (sends included): service ${svc} s, PostgreSQL ${pgc} s" >&2
      CPU_LOAD="service $svc s, PostgreSQL $pgc s"
      BACKLOG_END="$left (3 s later $left3)"
    else
      accepted=$(( $(q "SELECT count(*) FROM messages") - before_all ))
      svc=$(awk -v a="$c0_svc" -v b="$c1_svc" -v n="$accepted" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')
      pgc=$(awk -v a="$c0_pg" -v b="$c1_pg" -v n="$accepted" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')
      echo "API-only: ${RPS[off]} sends/s (non-2xx $bad); CPU per 1,000 accepted: service ${svc} s, PostgreSQL ${pgc} s" >&2
      CPU_API="service $svc s, PostgreSQL $pgc s"
    fi
    stop_all
  done
  q "CREATE TABLE IF NOT EXISTS pgbench_rows (id bigserial primary key, body text not null, at timestamptz default now())"
  echo "INSERT INTO pgbench_rows (body) VALUES ('bench row');" >"/tmp/msg-pgbench-$$.sql"
  tps=$(pgbench -n -c 16 -j 2 -T "${DURATION%s}" -f "/tmp/msg-pgbench-$$.sql" "$BASE_DB_URL/$DB" 2>/dev/null | awk '/^tps/ { printf "%.0f", $3 }')
  rm -f "/tmp/msg-pgbench-$$.sql"
  echo "pgbench one-row inserts (16 clients): $tps tps" >&2
  row "sends/s, delivery on (LOG_LEVEL=info) / API-only" "$(ratio "${RPS[on]}" "${RPS[off]}")" "${RPS[on]} / ${RPS[off]}" ">= 0.8" "backlog at end: $BACKLOG_END"
  row "sends/s, delivery on / pgbench one-row inserts" "$(ratio "${RPS[on]}" "$tps")" "${RPS[on]} / $tps" "" ""
  row "sends/s, API-only / pgbench one-row inserts" "$(ratio "${RPS[off]}" "$tps")" "${RPS[off]} / $tps" ">= 0.5" ""
  row "CPU per 1,000 sent under send load (sends + delivery)" "" "$CPU_LOAD" "" "load $(load)"
  row "CPU per 1,000 accepted, API-only (sends alone)" "" "$CPU_API" "" ""
fi

if want drain; then
  echo "== 2. drain a backlog of $BACKLOG (load $(load))" >&2
  fresh_db
  seed_backlog "$BASE_DB_URL/$DB" "$BACKLOG"
  psql "$BASE_DB_URL/$DB" -qc "VACUUM ANALYZE"
  # Started with its workers held back by a long poll and no wake-up: the backlog is claimed from the first poll on.
  # CPU is counted from the process's start (start-up included, about 0.3 s) and over every backend it opened.
  start_serve LOG_LEVEL=info
  deadline=$((SECONDS + 120))
  while [ "$(q "SELECT count(*) FROM messages WHERE status <> 'sent'")" != 0 ]; do
    [ $SECONDS -lt $deadline ] || { echo "the drain did not finish in 120 s" >&2; break; }
    sleep 0.1
  done
  mapfile -t pgp < <(pg_pids)
  c0_svc=0; c0_pg=0; c1_svc=$(cpu_of "$SERVE_PID"); c1_pg=$(cpu_of "${pgp[@]}")
  read -r sent secs < <(q "SELECT count(*), round(extract(epoch FROM max(updated_at) - (SELECT min(started_at) FROM delivery_attempts))::numeric, 2) FROM messages WHERE status = 'sent'" | tr '|' ' ')
  rate=$(awk -v n="$sent" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
  svc=$(awk -v a="$c0_svc" -v b="$c1_svc" -v n="$sent" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')
  pgc=$(awk -v a="$c0_pg" -v b="$c1_pg" -v n="$sent" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')
  echo "drain: $sent sent in $secs s = $rate msg/s; CPU per 1,000 delivered: service $svc s, PostgreSQL $pgc s" >&2
  stop_all
  row "drain of $BACKLOG queued, one process: msg/s / 10,000" "$(ratio "$rate" 10000)" "$rate msg/s ($sent in $secs s)" ">= 1.0" "load $(load)"
  row "CPU per 1,000 delivered (drain)" "" "service $svc s, PostgreSQL $pgc s" "" ""
fi

if want healthz; then
  echo "== 3. /healthz: binary (embedded, LOG_LEVEL=info, auth on) vs a bare Elysia route (load $(load))" >&2
  WORK=$(mktemp -d -t msg-bench-healthz-XXXXXX)
  declare -A HZ
  for who in bare info; do
    PORT=$(free_port)
    if [ "$who" = bare ]; then
      bun test/bench/bare-elysia.ts "$PORT" >>"$LOG" 2>&1 &
    else
      (cd "$WORK" && exec env -i PATH="$PATH" HOME="$WORK" PORT="$PORT" HOST=127.0.0.1 LOG_LEVEL=info MESSAGING_AUTH=on "$BIN" serve >>"$LOG" 2>&1) &
    fi
    PIDS+=($!)
    # The embedded database's first start (initdb) takes tens of seconds on a loaded machine: wait for the 200.
    up=""
    for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && { up=1; break; }; sleep 0.1; done
    [ -n "$up" ] || { echo "$who did not answer /healthz within 120 s" >&2; exit 1; }
    wrk -t2 -c50 -d2s "http://127.0.0.1:$PORT/healthz" >/dev/null
    HZ[$who]=$(wrk -t2 -c50 -d"$DURATION" "http://127.0.0.1:$PORT/healthz" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
    stop_all
    echo "$who: ${HZ[$who]} requests/s" >&2
  done
  rm -rf "$WORK"
  row "/healthz (LOG_LEVEL=info, auth on) / bare Elysia route" "$(ratio "${HZ[info]}" "${HZ[bare]}")" "${HZ[info]} / ${HZ[bare]}" ">= 0.6" "load $(load)"
fi

if want recovery && [ "$RECOVERY_RUNS" -gt 0 ]; then
  echo "== 4. kill -9 under load, restart: $RECOVERY_RUNS runs (load $(load))" >&2
  times=()
  worst=""
  for i in $(seq "$RECOVERY_RUNS"); do
    line=$(test/bench/recovery.sh)
    echo "run $i: $line" >&2
    times+=("$(echo "$line" | awk '{ print $1 }')")
    worst="$worst $(echo "$line" | sed -n 's/.*max calls \([0-9]*\).*/\1/p')"
  done
  row "kill -9 under load: s from restart to all sent / 10 s" "$(ratio "$(printf '%s\n' "${times[@]}" | sort -n | tail -1)" 10)" "runs: ${times[*]} s; max calls per message:$worst" "<= 1.0" "load $(load)"
fi

echo
echo "bun run bench, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(load), binary $BIN"
printf '| %-52s | %12s | %-44s | %8s | %s |\n' "what" "ratio" "figures" "target" "notes"
echo "|---|---|---|---|---|"
for r in "${ROWS[@]}"; do echo "$r"; done
