#!/usr/bin/env bash
# Benchmark of the compiled binary on the embedded default (not run by `bun test`):
#   binary size; time from spawn to the first 200 on /healthz on a second start (the data directory
#   already initialised); `wrk -t2 -c50 -d10s` on /healthz with LOG_LEVEL=info (one JSON line per
#   request) and with LOG_LEVEL=warn (no request lines), both with MESSAGING_AUTH=on (every security plugin
#   in the chain; /healthz stays open), next to a bare Elysia route on the same Bun (test/bench/bare-elysia.ts),
#   to show what the per-request log and the service's plugins cost. Targets: info >= 0.85 x warn,
#   warn >= 0.75 x bare.
# Usage: test/bench/healthz.sh   (builds dist/messaging when it is missing; installs wrk when missing;
#        MESSAGING_BIN=/path/to/binary measures another build)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=test/bench/lib.sh
. test/bench/lib.sh

BIN="${MESSAGING_BIN:-$PWD/dist/messaging}"
[[ -x "$BIN" ]] || bun run build >/dev/null
if ! command -v wrk >/dev/null; then
  echo "installing wrk (apt-get)"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

WORK="$(mktemp -d -t messaging-bench-XXXXXX)"
PID=""
stop_server() {
  if [[ -n "$PID" ]]; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
  fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

PORT="$(free_port)"
URL="http://127.0.0.1:$PORT/healthz"

# start_server LEVEL: spawns the binary in $WORK (no files beside it, embedded database in ./messaging-data),
# or the bare Elysia route when LEVEL is `bare`, and waits for the first 200; sets STARTUP_MS to the
# milliseconds from spawn to that answer.
# (Not called in $(...): the subshell would keep PID from the caller.)
STARTUP_MS=""
start_server() {
  local level="$1" started now
  started=$(date +%s%N)
  if [[ "$level" == bare ]]; then
    bun test/bench/bare-elysia.ts "$PORT" >>"$WORK/server.log" 2>&1 &
  else
    (cd "$WORK" && exec env -i PATH="$PATH" HOME="$WORK" PORT="$PORT" HOST=127.0.0.1 LOG_LEVEL="$level" MESSAGING_AUTH=on "$BIN" serve >>"$WORK/server.log" 2>&1) &
  fi
  PID=$!
  for _ in $(seq 1 3000); do
    if [[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL" || true)" == 200 ]]; then
      now=$(date +%s%N)
      STARTUP_MS=$(((now - started) / 1000000))
      return 0
    fi
    kill -0 "$PID" 2>/dev/null || { echo "the server exited; its log:" >&2; cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.005
  done
  echo "no 200 from $URL within 15 s" >&2
  exit 1
}

rps() { awk '/^Requests\/sec:/ { print $2 }'; }

echo "binary:        $BIN ($(du -m "$BIN" | cut -f1) MiB, $(stat -c %s "$BIN") bytes)"
start_server warn
first=$STARTUP_MS
stop_server
start_server warn
echo "startup:       first start ${first} ms (initdb), second start ${STARTUP_MS} ms (spawn to first 200 on /healthz)"
stop_server

declare -A RPS
for level in bare info warn; do
  start_server "$level"
  curl -s "$URL" >/dev/null # warm up the route
  out=$(wrk -t2 -c50 -d10s "$URL")
  stop_server
  RPS[$level]=$(echo "$out" | rps)
  errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ { print }')
  name=$([[ "$level" == bare ]] && echo "bare Elysia route" || echo "LOG_LEVEL=$level")
  echo "wrk $name: ${RPS[$level]} requests/s, latency $(echo "$out" | awk '/Latency/ { print "avg " $2 ", max " $4 }')${errors:+ ($errors)}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "ratios:        info/warn $(ratio "${RPS[info]}" "${RPS[warn]}") (target 0.85), warn/bare $(ratio "${RPS[warn]}" "${RPS[bare]}") (target 0.75)"
echo "machine:       $(nproc) cores; wrk and the server share them; load average $(cut -d" " -f1-3 /proc/loadavg)"
