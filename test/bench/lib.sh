# Shared pieces of the benchmark scripts (sourced, not run): a free loopback port, and the queued backlog the
# drain measurements start from.

# A TCP port nothing listens on, picked at random above 20000.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    ss -ltn "sport = :$port" | grep -q LISTEN || { echo "$port"; return; }
  done
}

# jobs_of DATABASE_URL: the delivery queue as a relation with `message_id`, `locked_by`, `run_at`: the messages whose
# `run_at` is set (migration 0016), or the `delivery_jobs` table of an earlier binary's database.
jobs_of() {
  if [ "$(psql "$1" -Atc "SELECT to_regclass('delivery_jobs') IS NOT NULL")" = t ]; then echo "delivery_jobs"
  else echo "(SELECT id AS message_id, locked_by, run_at FROM messages WHERE run_at IS NOT NULL) jobs"; fi
}

# seed_backlog DATABASE_URL COUNT: COUNT queued outbound SMS (500 conversations, COUNT/500 each) in the delivery
# queue, written in one transaction, as if accepted while no worker ran. The queue is the message row itself
# (`run_at`, migration 0016); a database of an earlier binary (MESSAGING_BIN of a before/after run) gets the
# `delivery_jobs` rows it has instead.
seed_backlog() {
  local jobs run_at_col run_at_val
  jobs=$(psql "$1" -Atc "SELECT to_regclass('delivery_jobs') IS NOT NULL")
  if [ "$jobs" = t ]; then run_at_col=""; run_at_val=""; else run_at_col=", run_at"; run_at_val=", now()"; fi
  psql "$1" -q <<SQL
WITH c AS (
  INSERT INTO conversations (transport, participant_a, participant_b, key, message_count, last_activity_at)
  SELECT 'sms', '+1203555' || lpad(g::text, 4, '0'), '+18045550002', 'sms:+1203555' || lpad(g::text, 4, '0') || '<->+18045550002', 0, now()
    FROM generate_series(1, 500) g
  RETURNING id),
m AS (
  INSERT INTO messages (conversation_id, direction, channel, transport, from_addr, to_addr, body, status, timestamp$run_at_col)
  SELECT c.id, 'outbound', 'sms', 'sms', '+12035550000', '+18045550002', 'backlog ' || n, 'queued', now()$run_at_val
    FROM c, generate_series(1, $2 / 500) n
  RETURNING id)
$(if [ "$jobs" = t ]; then echo "INSERT INTO delivery_jobs (message_id) SELECT id FROM m;"; else echo "SELECT count(*) FROM m;"; fi)
UPDATE conversations SET message_count = $2 / 500;
SQL
}
