#!/usr/bin/env bash
# Start-up benchmark of the compiled binary (not run by `bun test`): how long an operator waits for
#   `messaging --version` and `messaging --help` to print, `messaging check` against PostgreSQL to finish, and
#   `messaging serve` on PostgreSQL to answer its first 200 on /readyz (spawn to that answer, polled every 2 ms
#   through bash's /dev/tcp, so the poller forks nothing and takes no CPU from the starting server).
# Each is run RUNS times (default 7) and the median is printed next to its target:
#   --version ≤ 50 ms, --help ≤ 50 ms, check ≤ 200 ms, serve ready ≤ 300 ms.
# check and serve use one fresh database (migrated once by `migrate up`, dropped at the end) with API-key auth
# on, so serve runs the same plugins as in production. Builds nothing: run `bun run build` first.
# Usage: test/bench/startup.sh   (env: RUNS, BASE_DB_URL, MESSAGING_BIN=/path/to/binary measures another build)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=test/bench/lib.sh
. test/bench/lib.sh

BIN="${MESSAGING_BIN:-$PWD/dist/messaging}"
RUNS="${RUNS:-7}"
BASE_DB_URL="${BASE_DB_URL:-postgres://postgres@127.0.0.1:5432}"
[[ -x "$BIN" ]] || { echo "no binary at $BIN; run \`bun run build\` first" >&2; exit 2; }

DB="msg_startup_$$"
WORK="$(mktemp -d -t messaging-startup-XXXXXX)"
PID=""
stop_server() {
  if [[ -n "$PID" ]]; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
  fi
}
cleanup() {
  stop_server
  psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

exec 4<> <(:)

# The binary runs from an empty directory with only the environment given here, as an operator would run it.
run_bin() { (cd "$WORK" && exec env -i PATH="$PATH" HOME="$WORK" "$@"); }

# median: the middle of the numbers on stdin (the lower middle for an even count).
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# time_command NAME TARGET_MS ENV... -- ARGS...: runs the binary RUNS times, each expected to exit 0.
time_command() {
  local name="$1" target="$2" started ended
  shift 2
  local env=()
  while [[ "$1" != "--" ]]; do env+=("$1"); shift; done
  shift
  local samples=()
  for _ in $(seq 1 "$RUNS"); do
    started="${EPOCHREALTIME/./}"
    run_bin "${env[@]}" "$BIN" "$@" >"$WORK/out.log" 2>&1 || { echo "$name failed:" >&2; cat "$WORK/out.log" >&2; exit 1; }
    ended="${EPOCHREALTIME/./}"
    samples+=($(((ended - started) / 1000)))
  done
  report "$name" "$target" "${samples[@]}"
}

# serve_ready: starts serve on a free port, sets READY_MS to the milliseconds from spawn to the first 200 on
# /readyz, and stops it. (Not called in $(...): the subshell would keep PID from the EXIT trap.)
READY_MS=""
serve_ready() {
  local port started status
  port="$(free_port)"
  started="${EPOCHREALTIME/./}"
  # Launched by exec from a subshell (not through run_bin), so that $! is the server itself and stop_server reaches it.
  (cd "$WORK" && exec env -i PATH="$PATH" HOME="$WORK" DATABASE_URL="$BASE_DB_URL/$DB" PORT="$port" HOST=127.0.0.1 LOG_LEVEL=warn \
    MESSAGING_AUTH=on "$BIN" serve >>"$WORK/serve.log" 2>&1) &
  PID=$!
  for _ in $(seq 1 10000); do
    status=""
    if exec 3<>"/dev/tcp/127.0.0.1/$port"; then
      printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
      read -r _ status _ <&3 || true
      exec 3<&-
    fi 2>/dev/null
    if [[ "$status" == 200 ]]; then
      READY_MS=$(((${EPOCHREALTIME/./} - started) / 1000))
      stop_server
      return 0
    fi
    kill -0 "$PID" 2>/dev/null || { echo "serve exited; its log:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
    read -rt 0.002 -u 4 _ || true # a 2 ms pause without forking sleep (fd 4 is a pipe that never has data)
  done
  echo "no 200 from /readyz within the polling budget" >&2
  exit 1
}

# report NAME TARGET_MS SAMPLES...: one line with the median, the target and every sample.
report() {
  local name="$1" target="$2" med verdict
  shift 2
  med=$(printf '%s\n' "$@" | median)
  verdict=$([[ "$med" -le "$target" ]] && echo "ok" || echo "OVER")
  printf '%-22s median %4d ms   target ≤ %3d ms   %-4s  (runs: %s)\n' "$name" "$med" "$target" "$verdict" "$*"
}

echo "binary: $BIN ($(du -m "$BIN" | cut -f1) MiB); $RUNS runs each; $(nproc) cores, load average $(cut -d" " -f1-3 /proc/loadavg)"

time_command "--version" 50 -- --version
time_command "--help" 50 -- --help

psql "$BASE_DB_URL/postgres" -qc "CREATE DATABASE $DB" >/dev/null
run_bin DATABASE_URL="$BASE_DB_URL/$DB" "$BIN" migrate up >/dev/null
time_command "check (PostgreSQL)" 200 DATABASE_URL="$BASE_DB_URL/$DB" MESSAGING_AUTH=on -- check

samples=()
for _ in $(seq 1 "$RUNS"); do
  serve_ready
  samples+=("$READY_MS")
done
report "serve ready (PG)" 300 "${samples[@]}"
