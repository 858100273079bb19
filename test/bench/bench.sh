#!/usr/bin/env bash
# `bun run bench`: every figure of the delivery-cost issue in one run, and one table of ratios at the end.
# Ratios are what count on a shared machine, and each compares figures taken in the same minute: the two sides of
# a ratio run side by side and wrk alternates between them in slices (this host's speed swings by 2x within minutes).
#   1. send load (test/bench/send.lua, wrk -t2 -c50): default `serve` on PostgreSQL (delivery on, LOG_LEVEL=info,
#      mock latency 0) and API-only (MESSAGING_DELIVERY_WORKERS=0), a database each, and pgbench one-row inserts (16
#      clients), ROUNDS rounds of SLICE-second slices; after each delivery-on slice its backlog (reported) is left
#      to be sent before the next slice; CPU seconds per 1,000 delivered messages (service and its PostgreSQL
#      backends, from /proc, until the backlog is sent), and per 1,000 accepted API-only: the difference is delivery's.
#   2. drain of a BACKLOG (20,000) seeded with SQL, one `serve`: messages/s and CPU per 1,000.
#   3. /healthz of the binary (embedded database, LOG_LEVEL=info, auth on) next to a bare Elysia route, ROUNDS
#      alternating slices of SLICE seconds.
#   4. RECOVERY_RUNS (5) kill -9 runs of test/bench/recovery.sh: seconds from the restart until every stored
#      message is `sent`.
# Usage: bun run bench   (env: BASE_DB_URL, ROUNDS=4, SLICE=5 (seconds), BACKLOG=20000, RECOVERY_RUNS=5, ONLY=load|drain|healthz|recovery,
#                         MESSAGING_BIN=/path/to/binary measures another build)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=test/bench/lib.sh
. test/bench/lib.sh
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
BASE_DB_URL="${BASE_DB_URL:-postgres://postgres@127.0.0.1:5432}"
BACKLOG="${BACKLOG:-20000}"
RECOVERY_RUNS="${RECOVERY_RUNS:-5}"
ROUNDS="${ROUNDS:-4}"
SLICE="${SLICE:-5}"
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
  psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS ${DB}_off WITH (FORCE)" >/dev/null 2>&1 || true
  rm -f "$LOG"
}
trap cleanup EXIT

fresh_db() { # [NAME] (default $DB)
  local name="${1:-$DB}"
  psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null
  psql "$BASE_DB_URL/postgres" -qc "CREATE DATABASE $name" >/dev/null
  DATABASE_URL="$BASE_DB_URL/$name" "$BIN" migrate up >/dev/null
}
q() { psql "$BASE_DB_URL/$DB" -Atc "$1"; }

# PostgreSQL side: every process forked by the postmaster whose command line names this database (its backends).
pg_pids() { pgrep -f "postgres: .* ${1:-$DB} " || true; }
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
start_serve() { # [DATABASE] env...   (a port taken between the check and the listen, on a shared machine, is retried)
  local name="$DB"
  if [[ "${1:-}" != *=* ]]; then name=$1; shift; fi
  for _ in 1 2 3; do
    PORT=$(free_port)
    env DATABASE_URL="$BASE_DB_URL/$name" PORT="$PORT" HOST=127.0.0.1 "$@" "$BIN" serve >>"$LOG" 2>&1 &
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
  # Interleaved: both servers run side by side (a database each) and wrk alternates between them in slices, with a
  # pgbench slice in each round, so that all three figures of a round come from the same minute. This machine's
  # speed swings by 2x within minutes (a shared host's CPU steal and throttling, 2026-12-07), which a 10 s run of
  # each one after the other turned into ratios from 0.32 to 0.84 for the same binary.
  echo "== 1. send load, wrk -t2 -c50, $ROUNDS rounds of ${SLICE}s slices: delivery on, API-only, pgbench (load $(load))" >&2
  DB_OFF="${DB}_off"
  fresh_db "$DB"; fresh_db "$DB_OFF"
  start_serve "$DB" LOG_LEVEL=info; PORT_ON=$PORT; PID_ON=$SERVE_PID
  start_serve "$DB_OFF" LOG_LEVEL=info MESSAGING_DELIVERY_WORKERS=0; PORT_OFF=$PORT; PID_OFF=$SERVE_PID
  for p in "$PORT_ON" "$PORT_OFF"; do wrk -t2 -c50 -d2s -s test/bench/send.lua "http://127.0.0.1:$p" >/dev/null; done
  q_off() { psql "$BASE_DB_URL/$DB_OFF" -Atc "$1"; }
  pending="SELECT count(*) FROM messages WHERE direction = 'outbound' AND status NOT IN ('sent', 'delivered', 'failed')"
  # Everything queued by the warm-up is sent before the first slice.
  for _ in $(seq 300); do [ "$(q "$pending")" = 0 ] && break; sleep 0.1; done
  q "CREATE TABLE IF NOT EXISTS pgbench_rows (id bigserial primary key, body text not null, at timestamptz default now())"
  echo "INSERT INTO pgbench_rows (body) VALUES ('bench row');" >"/tmp/msg-pgbench-$$.sql"
  sum_on=0; sum_off=0; sum_pg=0; sent_on=0; acc_off=0; cpu_on_svc=0; cpu_on_pg=0; cpu_off_svc=0; cpu_off_pg=0; bad_all=0
  backlogs=(); drains=(); round_ratios=()
  slice() { # PORT → requests/s (non-2xx added to bad_all)
    local out
    out=$(wrk -t2 -c50 -d"${SLICE}s" -s test/bench/send.lua "http://127.0.0.1:$1")
    bad_all=$((bad_all + $(echo "$out" | awk '/^non-2xx:/ { print $2 }')))
    echo "$out" | awk '/^requests\/s:/ { print $2 }'
  }
  add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a + b }'; }
  for round in $(seq "$ROUNDS"); do
    # Delivery on: CPU from the slice's start until its backlog is sent (delivery's work is all counted).
    sent0=$(q "SELECT count(*) FROM messages WHERE status = 'sent'")
    mapfile -t pgp < <(pg_pids "$DB"); s0=$(cpu_of "$PID_ON"); p0=$(cpu_of "${pgp[@]}")
    r_on=$(slice "$PORT_ON")
    backlog=$(q "$pending"); t0=$(date +%s.%N)
    for _ in $(seq 600); do [ "$(q "$pending")" = 0 ] && break; sleep 0.05; done
    drains+=("$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"); backlogs+=("$backlog")
    mapfile -t pgp < <(pg_pids "$DB"); s1=$(cpu_of "$PID_ON"); p1=$(cpu_of "${pgp[@]}")
    sent_on=$((sent_on + $(q "SELECT count(*) FROM messages WHERE status = 'sent'") - sent0))
    cpu_on_svc=$(add "$cpu_on_svc" "$(add "$s1" "-$s0")"); cpu_on_pg=$(add "$cpu_on_pg" "$(add "$p1" "-$p0")")
    # API-only.
    all0=$(q_off "SELECT count(*) FROM messages")
    mapfile -t pgp < <(pg_pids "$DB_OFF"); s0=$(cpu_of "$PID_OFF"); p0=$(cpu_of "${pgp[@]}")
    r_off=$(slice "$PORT_OFF")
    mapfile -t pgp < <(pg_pids "$DB_OFF"); s1=$(cpu_of "$PID_OFF"); p1=$(cpu_of "${pgp[@]}")
    acc_off=$((acc_off + $(q_off "SELECT count(*) FROM messages") - all0))
    cpu_off_svc=$(add "$cpu_off_svc" "$(add "$s1" "-$s0")"); cpu_off_pg=$(add "$cpu_off_pg" "$(add "$p1" "-$p0")")
    # pgbench one-row inserts, 16 clients.
    tps=$(pgbench -n -c 16 -j 2 -T "$SLICE" -f "/tmp/msg-pgbench-$$.sql" "$BASE_DB_URL/$DB" 2>/dev/null | awk '/^tps/ { printf "%.0f", $3 }')
    echo "round $round: delivery on $r_on sends/s (backlog at the slice's end $backlog, all sent ${drains[-1]} s later), API-only $r_off sends/s, pgbench $tps tps: $(ratio "$r_on" "$r_off") on/API-only (load $(load))" >&2
    round_ratios+=("$(ratio "$r_on" "$r_off")")
    sum_on=$(add "$sum_on" "$r_on"); sum_off=$(add "$sum_off" "$r_off"); sum_pg=$(add "$sum_pg" "$tps")
  done
  rm -f "/tmp/msg-pgbench-$$.sql"
  stop_all
  mean() { awk -v s="$1" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }'; }
  per1000() { awk -v c="$1" -v n="$2" 'BEGIN { printf "%.3f", c * 1000 / n }'; }
  ON=$(mean "$sum_on"); OFF=$(mean "$sum_off"); TPS=$(mean "$sum_pg")
  CPU_LOAD="service $(per1000 "$cpu_on_svc" "$sent_on") s, PostgreSQL $(per1000 "$cpu_on_pg" "$sent_on") s"
  CPU_API="service $(per1000 "$cpu_off_svc" "$acc_off") s, PostgreSQL $(per1000 "$cpu_off_pg" "$acc_off") s"
  echo "means of $ROUNDS rounds: delivery on $ON sends/s, API-only $OFF sends/s, pgbench $TPS tps; non-2xx $bad_all; CPU per 1,000 sent with delivery on (sends included): $CPU_LOAD; per 1,000 accepted API-only: $CPU_API" >&2
  row "sends/s, delivery on (LOG_LEVEL=info) / API-only" "$(ratio "$ON" "$OFF")" "$ON / $OFF (rounds: ${round_ratios[*]})" ">= 0.8" "backlog at each slice's end: ${backlogs[*]}; all sent within ${drains[*]} s"
  row "sends/s, delivery on / pgbench one-row inserts" "$(ratio "$ON" "$TPS")" "$ON / $TPS" "" ""
  row "sends/s, API-only / pgbench one-row inserts" "$(ratio "$OFF" "$TPS")" "$OFF / $TPS" ">= 0.5" "non-2xx: $bad_all"
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
  echo "== 3. /healthz: binary (embedded, LOG_LEVEL=info, auth on) vs a bare Elysia route, $ROUNDS rounds of ${SLICE}s slices (load $(load))" >&2
  WORK=$(mktemp -d -t msg-bench-healthz-XXXXXX)
  declare -A HZ_PORT HZ
  for who in bare info; do
    PORT=$(free_port)
    if [ "$who" = bare ]; then
      bun test/bench/bare-elysia.ts "$PORT" >>"$LOG" 2>&1 &
    else
      (cd "$WORK" && exec env -i PATH="$PATH" HOME="$WORK" PORT="$PORT" HOST=127.0.0.1 LOG_LEVEL=info MESSAGING_AUTH=on "$BIN" serve >>"$LOG" 2>&1) &
    fi
    PIDS+=($!)
    HZ_PORT[$who]=$PORT
    # The embedded database's first start (initdb) takes tens of seconds on a loaded machine: wait for the 200.
    up=""
    for _ in $(seq 1200); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && { up=1; break; }; sleep 0.1; done
    [ -n "$up" ] || { echo "$who did not answer /healthz within 120 s" >&2; exit 1; }
    wrk -t2 -c50 -d2s "http://127.0.0.1:$PORT/healthz" >/dev/null
    HZ[$who]=0
  done
  hz_rounds=()
  for round in $(seq "$ROUNDS"); do
    declare -A R
    for who in bare info; do
      R[$who]=$(wrk -t2 -c50 -d"${SLICE}s" "http://127.0.0.1:${HZ_PORT[$who]}/healthz" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
      HZ[$who]=$((HZ[$who] + R[$who]))
    done
    hz_rounds+=("$(ratio "${R[info]}" "${R[bare]}")")
    echo "round $round: bare ${R[bare]} requests/s, /healthz ${R[info]} requests/s: $(ratio "${R[info]}" "${R[bare]}") (load $(load))" >&2
  done
  stop_all
  rm -rf "$WORK"
  for who in bare info; do HZ[$who]=$((HZ[$who] / ROUNDS)); done
  row "/healthz (LOG_LEVEL=info, auth on) / bare Elysia route" "$(ratio "${HZ[info]}" "${HZ[bare]}")" "${HZ[info]} / ${HZ[bare]} (rounds: ${hz_rounds[*]})" ">= 0.6" "load $(load)"
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
