#!/usr/bin/env bash
# Scale benchmark (issue 10): do reads and sends cost the same at a million conversations as at five hundred?
# One fresh PostgreSQL database grown size by size with SQL (generate_series: seconds, not hours), each
# conversation with one message; after each size, `check --repair-counters` (when the binary has it) and
# VACUUM ANALYZE, then `serve` is measured with wrk -t2 -c50 --latency:
#   - the first page of GET /api/conversations;
#   - a cursor page 90% deep into the list (its cursor is the next_cursor of one deep `page=` request);
#   - that same deep page asked with `page=` (OFFSET), for comparison;
#   - the send benchmark (test/bench/send.lua).
# Then one conversation of MESSAGES messages: its first page, a cursor page 90% deep, and the same `page=`.
# Usage: test/bench/scale.sh   (env: BASE_DB_URL, SIZES="500 10000 100000 1000000", MESSAGES=1000000
#                               (0 skips it), DURATION=10s, PORT)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
BASE_DB_URL="${BASE_DB_URL:-postgres://postgres@127.0.0.1:5432}"
SIZES="${SIZES:-500 10000 100000 1000000}"
MESSAGES="${MESSAGES:-1000000}"
DURATION="${DURATION:-10s}"
PORT="${PORT:-18290}"
DB="msg_bench_scale_$$"
LOG="/tmp/msg-bench-scale-$$.log"
URL="http://127.0.0.1:$PORT"
[ -x dist/messaging ] || bun run build >/dev/null
PID=

cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  psql "$BASE_DB_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
  rm -f "$LOG"
}
trap cleanup EXIT

export DATABASE_URL="$BASE_DB_URL/$DB" PORT MESSAGING_AUTH=off LOG_LEVEL=warn MESSAGING_DELIVERY_WORKERS=0
export API_RATE_LIMIT_PER_IP_PER_MIN=10000000 API_RATE_LIMIT_PER_SENDER_PER_MIN=10000000

psql "$BASE_DB_URL/postgres" -qc "CREATE DATABASE $DB" >/dev/null
./dist/messaging migrate up >/dev/null

start_serve() {
  ./dist/messaging serve >>"$LOG" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "$URL/healthz" >/dev/null && return; sleep 0.1; done
  echo "serve did not start:" >&2; cat "$LOG" >&2; exit 1
}

stop_serve() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

# Conversations (from+1)..to: one SMS pair each (+1303…, +1804…), one message each, activity one second apart
# with microseconds that differ, so ties within a millisecond exist as they do in real traffic.
seed_conversations() { # from to
  psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 <<SQL
WITH c AS (
  INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
  SELECT 'sms', '+1303' || lpad(g::text, 7, '0'), '+18045559999', 'sms:+1303' || lpad(g::text, 7, '0') || '<->+18045559999', 1,
         timestamptz '2025-01-01T00:00:00Z' + g * interval '1 second' + (g % 997) * interval '1 microsecond'
    FROM generate_series($1 + 1, $2) g
  RETURNING id, participant_a, last_activity_at)
INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp)
SELECT id, 'outbound', 'sms', 'sms', '+18045559999', participant_a, 'hello from the scale benchmark', 'sent', last_activity_at FROM c;
SQL
}

# One conversation of $MESSAGES messages, 10 ms apart, older than every seeded conversation's activity.
seed_long_conversation() {
  psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 <<SQL
WITH c AS (
  INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
  VALUES ('sms', '+15550000001', '+15550000002', 'sms:+15550000001<->+15550000002', $MESSAGES,
          timestamptz '2024-06-01T00:00:00Z' + $MESSAGES * interval '10 milliseconds')
  RETURNING id)
INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp)
SELECT c.id, CASE WHEN g % 2 = 0 THEN 'outbound' ELSE 'inbound' END, 'sms', 'sms',
       CASE WHEN g % 2 = 0 THEN '+15550000001' ELSE '+15550000002' END,
       CASE WHEN g % 2 = 0 THEN '+15550000002' ELSE '+15550000001' END,
       'message ' || g || ' of a long conversation', 'sent',
       timestamptz '2024-06-01T00:00:00Z' + g * interval '10 milliseconds' + (g % 991) * interval '1 microsecond'
  FROM c, generate_series(1, $MESSAGES) g;
SQL
}

settle() {
  if ./dist/messaging check --help 2>&1 | grep -q repair-counters; then ./dist/messaging check --repair-counters >/dev/null; fi
  psql "$DATABASE_URL" -qc "VACUUM ANALYZE" >/dev/null
}

# "req/s p50_ms p99_ms" of wrk on one URL (or with a script), after a 2 s warm-up.
measure() { # url [script]
  local script=()
  [ -n "${2:-}" ] && script=(-s "$2")
  wrk -t2 -c50 -d2s "${script[@]}" "$1" >/dev/null
  wrk -t2 -c50 -d"$DURATION" --latency "${script[@]}" "$1" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) } /^Requests\/sec/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    END { if (bad) printf "(%s non-2xx!) ", bad > "/dev/stderr"; printf "%.0f %.1f %.1f\n", rps, p50, p99 }'
}

# The next_cursor of one `page=` request: a cursor to the row just after that page.
cursor_after_page() { # path page
  curl -sf "$URL$1?page=$2" | jq -r '.meta.next_cursor'
}

ROWS=()
have=0
for size in $SIZES; do
  t0=$SECONDS
  [ "$size" -gt "$have" ] && seed_conversations "$have" "$size"
  have=$size
  settle
  echo "== $size conversations (seeded and vacuumed in $((SECONDS - t0)) s)" >&2
  start_serve
  deep_page=$(( size * 9 / 10 / 50 )); [ "$deep_page" -ge 1 ] || deep_page=1
  cursor=$(cursor_after_page /api/conversations "$deep_page")
  read -r first_rps first_p50 first_p99 < <(measure "$URL/api/conversations")
  read -r deep_rps _ deep_p99 < <(measure "$URL/api/conversations?cursor=$cursor")
  read -r _ _ page_p99 < <(measure "$URL/api/conversations?page=$((deep_page + 1))")
  read -r send_rps _ _ < <(measure "$URL" test/bench/send.lua)
  stop_serve
  ROWS+=("$(printf '| %9s | %7s %6s %6s | %7s %6s | %8s | %7s |' "$size" "$first_rps" "$first_p50" "$first_p99" "$deep_rps" "$deep_p99" "$page_p99" "$send_rps")")
done

MSG_ROW=
if [ "$MESSAGES" -gt 0 ]; then
  t0=$SECONDS
  seed_long_conversation
  settle
  echo "== one conversation of $MESSAGES messages (seeded and vacuumed in $((SECONDS - t0)) s)" >&2
  id=$(psql "$DATABASE_URL" -Atc "SELECT id FROM conversations WHERE key = 'sms:+15550000001<->+15550000002'")
  start_serve
  deep_page=$(( MESSAGES * 9 / 10 / 50 )); [ "$deep_page" -ge 1 ] || deep_page=1
  cursor=$(cursor_after_page "/api/conversations/$id/messages" "$deep_page")
  read -r m_rps m_p50 m_p99 < <(measure "$URL/api/conversations/$id/messages")
  read -r md_rps _ md_p99 < <(measure "$URL/api/conversations/$id/messages?cursor=$cursor")
  read -r _ _ mp_p99 < <(measure "$URL/api/conversations/$id/messages?page=$((deep_page + 1))")
  stop_serve
  MSG_ROW="$(printf '| %9s | %7s %6s %6s | %7s %6s | %8s |' "$MESSAGES" "$m_rps" "$m_p50" "$m_p99" "$md_rps" "$md_p99" "$mp_p99")"
fi

echo
echo "wrk -t2 -c50 -d$DURATION, latencies in ms; deep = 90% into the list (cursor, then the same page by page=)"
echo "| conversations | first page req/s p50 p99 | deep cursor req/s p99 | deep page= p99 | sends/s |"
echo "|---|---|---|---|---|"
for row in "${ROWS[@]}"; do echo "$row"; done
if [ -n "$MSG_ROW" ]; then
  echo
  echo "| messages in one conversation | first page req/s p50 p99 | deep cursor req/s p99 | deep page= p99 |"
  echo "|---|---|---|---|"
  echo "$MSG_ROW"
fi
